"""Tests of the NAB detectors (bench/nab_detectors.py) and the NAB runner (bench/nab.py)."""

from __future__ import annotations

import csv
import datetime
import json
import math

import numpy as np
import pytest

from bench import nab, nab_detectors

T0 = datetime.datetime(2014, 4, 1)


def test_probationary_period():
    assert nab_detectors.probationary_period(100) == 15
    assert nab_detectors.probationary_period(4032) == 604
    assert nab_detectors.probationary_period(22695) == 750


def test_windowed_gaussian_by_hand():
    det = nab_detectors.WindowedGaussianDetector([])
    assert det.handle(T0, 1.0) == (0.0, 0.0)  # nothing seen yet
    assert det.handle(T0, 3.0)[0] == 1.0  # window [1]: std 0 -> 1e-6, far out
    assert det.handle(T0, 2.0)[0] == pytest.approx(0.5)  # window [1, 3]: at the mean
    std = math.sqrt(2 / 3)  # window [1, 3, 2]
    expected = 1 - 0.5 * math.erfc((3.0 - 2.0) / std / math.sqrt(2))
    twin = nab_detectors.WindowedGaussianDetector([])
    for v in (1.0, 3.0, 2.0):
        twin.handle(T0, v)
    assert det.handle(T0, 3.0)[0] == pytest.approx(expected)
    assert twin.handle(T0, 1.0)[0] == pytest.approx(expected)  # mirrored below the mean


def test_windowed_gaussian_slides_by_steps():
    det = nab_detectors.WindowedGaussianDetector([])
    det.window_size, det.step_size = 4, 2
    for v in (1.0, 2.0, 3.0, 4.0, 5.0):
        det.handle(T0, v)
    assert det.window == [1.0, 2.0, 3.0, 4.0] and det.pending == [5.0]
    assert det.mean == 2.5
    det.handle(T0, 6.0)
    assert det.window == [3.0, 4.0, 5.0, 6.0] and det.pending == []
    assert det.mean == 4.5


def test_spatial_anomaly_rule():
    tracker = nab_detectors.SpatialAnomalyTracker()
    assert tracker.check(10.0) is False  # first value
    assert tracker.check(10.0) is False  # range is a single value: no test
    assert tracker.check(20.0) is False
    assert tracker.check(20.5) is False  # within 5% of the range 10..20
    assert tracker.check(21.1) is True  # beyond 20.5 + 0.525
    assert tracker.check(9.5) is False  # range is now 10..21.1: tolerance 0.555
    assert tracker.check(9.4) is False  # range 9.5..21.1: above 9.5 - 0.58
    assert tracker.check(8.8) is True


def write_corpus(root, n=600):
    """Two small data files and their labels; a spike inside the window of the first."""
    rng = np.random.default_rng(0)
    stamps = [T0 + datetime.timedelta(minutes=5 * i) for i in range(n)]
    files = {"catA/spiky.csv": rng.normal(10, 0.5, n), "catB/calm.csv": rng.normal(5, 0.1, n)}
    files["catA/spiky.csv"][400] = 40.0
    for relpath, values in files.items():
        path = root / "data" / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{t},{v}" for t, v in zip(stamps, values, strict=True)]
        path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    labels = {"catA/spiky.csv": [[f"{stamps[395]}.000000", f"{stamps[420]}.000000"]],
              "catB/calm.csv": []}
    (root / "labels.json").write_text(json.dumps(labels))
    return stamps


def test_runner_writes_results_and_scores_them(tmp_path, capsys):
    stamps = write_corpus(tmp_path)
    code = nab.main(["--data", str(tmp_path / "data"), "--labels", str(tmp_path / "labels.json"),
                     "--out", str(tmp_path / "out"), "--jobs", "2",
                     "--detector", "windowedGaussian"])
    assert code == 0
    out = capsys.readouterr().out
    result = tmp_path / "out" / "catA" / "windowedGaussian_spiky.csv"
    with open(result) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "raw_score", "label"]
    assert len(rows) == len(stamps)
    assert [i for i, r in enumerate(rows) if r["label"] == "1"] == list(range(395, 421))
    assert float(rows[400]["anomaly_score"]) == 1.0
    # the spike is the only clear detection: standard profile scores well above null
    standard = next(line for line in out.splitlines() if " standard " in line)
    assert float(standard.split("normalized=")[1]) > 50
    assert "2 files, 1200 rows" in out
    stats = json.loads((tmp_path / "out" / "windowedGaussian_run_stats.json").read_text())
    assert sorted(s["file"] for s in stats) == ["catA/spiky.csv", "catB/calm.csv"]

    code = nab.main(["--data", str(tmp_path / "data"), "--labels", str(tmp_path / "labels.json"),
                     "--out", str(tmp_path / "out"), "--detector", "null",
                     "--files", "catA/*", "--jobs", "1"])
    assert code == 0
    assert "normalized=   0.00" in capsys.readouterr().out


def test_runner_rejects_a_pattern_matching_nothing(tmp_path, capsys):
    write_corpus(tmp_path)
    code = nab.main(["--data", str(tmp_path / "data"), "--labels", str(tmp_path / "labels.json"),
                     "--out", str(tmp_path / "out"), "--files", "nope/*", "--detector", "null"])
    assert code == 2
    assert "no labelled data file matches" in capsys.readouterr().err
