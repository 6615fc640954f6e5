"""Hand-computed cases for the NAB v1.1 scorer in bench/nab_scoring.py."""

from __future__ import annotations

import datetime
import json
import math

import numpy as np
import pytest

from bench import nab_scoring as ns

T0 = datetime.datetime(2015, 3, 1)
N = 100  # rows per synthetic file: probationary period floor(0.15 * 100) = 15 rows
STANDARD = ns.NAB_PROFILES["standard"]


def stamps(n=N):
    return [T0 + datetime.timedelta(minutes=5 * i) for i in range(n)]


def labeled(windows=((40, 49),), n=N, name="cat/file.csv"):
    ts = stamps(n)
    return ns.LabeledFile.build(name, ts, [(ts[a], ts[b]) for a, b in windows])


def fire(*rows, n=N):
    scores = np.zeros(n)
    scores[list(rows)] = 1.0
    return scores


def score(scores, lab=None, cost=STANDARD, threshold=1.0):
    return ns.score_file(lab or labeled(), scores, threshold, cost).score


def sigma(y):
    """The scaled sigmoid written independently: 2/(1+e^(5y)) - 1 = tanh(-5y/2)."""
    return -1.0 if y > 3 else math.tanh(-2.5 * y)


def test_profiles_are_nabs():
    assert STANDARD == ns.CostMatrix(tpWeight=1.0, fnWeight=1.0, fpWeight=0.11, tnWeight=1.0)
    assert ns.NAB_PROFILES["reward_low_FP_rate"].fpWeight == 0.22
    assert ns.NAB_PROFILES["reward_low_FN_rate"].fnWeight == 2.0


def test_scaled_sigmoid_and_probation():
    assert ns.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert ns.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert ns.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert ns.scaled_sigmoid(3.5) == -1.0
    assert ns.probationary_length(1000) == 150
    assert ns.probationary_length(10_000) == 750


def test_detection_at_window_start_is_worth_tp_weight():
    assert score(fire(40)) == pytest.approx(1.0)


def test_detection_at_window_end_is_worth_less():
    expected = sigma(-1 / 10) / sigma(-1)
    assert score(fire(49)) == pytest.approx(expected)
    assert 0 < expected < 0.3


def test_only_the_earliest_detection_in_a_window_counts():
    assert score(fire(42, 45, 48)) == pytest.approx(sigma(-8 / 10) / sigma(-1))


def test_missed_window_costs_fn_weight():
    assert score(np.zeros(N)) == -1.0
    assert score(np.zeros(N), cost=ns.NAB_PROFILES["reward_low_FN_rate"]) == -2.0


def test_false_positive_before_any_window_costs_fp_weight():
    assert score(fire(20)) == pytest.approx(-1.0 - 0.11)
    assert score(fire(20), cost=ns.NAB_PROFILES["reward_low_FP_rate"]) == pytest.approx(-1.22)


def test_false_positive_after_window_grows_with_distance():
    near = score(fire(40, 55))  # |49 - 55| / (10 - 1) past the window
    assert near == pytest.approx(1.0 + 0.11 * sigma(6 / 9))
    far = score(fire(40, 77))  # 28 / 9 > 3: full cost
    assert far == pytest.approx(1.0 - 0.11)
    just_after = score(fire(40, 50))
    assert 1.0 - 0.11 < near < just_after < 1.0


def test_probationary_rows_are_not_scored():
    assert score(fire(5)) == -1.0  # a detection in the first 15 rows costs nothing
    detail = ns.score_file(labeled(), fire(5, 40, 60), 1.0, STANDARD)
    assert (detail.tp, detail.fp, detail.fn) == (1, 1, 9)
    assert detail.tn == N - 15 - 10 - 1


def test_threshold_sweep_matches_per_threshold_scoring():
    rng = np.random.default_rng(4)
    files = [
        (labeled(((30, 39), (70, 79)), name="a.csv"), np.round(rng.random(N), 2)),
        (labeled(((50, 64),), name="b.csv"), np.round(rng.random(N), 2)),
        (labeled((), name="c.csv"), np.round(rng.random(N), 2)),
    ]
    for cost in ns.NAB_PROFILES.values():
        thresholds, totals = ns.sweep_thresholds(files, cost)
        assert thresholds[0] == 1.1 and totals[0] == -3 * cost.fnWeight
        assert np.all(np.diff(thresholds) < 0)
        for threshold, total in zip(thresholds, totals, strict=True):
            direct = sum(ns.score_file(lab, s, threshold, cost).score for lab, s in files)
            assert total == pytest.approx(direct, abs=1e-9)


def test_optimizer_prefers_the_highest_threshold_on_ties():
    scores = np.zeros(N)
    scores[40] = 0.9
    scores[41] = 0.8  # same window: lowering the threshold to 0.8 gains nothing
    threshold, total = ns.optimize_threshold([(labeled(), scores)], STANDARD)
    assert threshold == 0.9 and total == pytest.approx(1.0)


def test_normalized_scores_of_reference_detectors():
    windows = {"a.csv": ((30, 39), (70, 79)), "b.csv": ((50, 64),)}
    labs = {name: labeled(w, name=name) for name, w in windows.items()}

    def run(results):
        return ns.score_corpus(results, labs, total_windows=3)

    perfect = run({"a.csv": fire(30, 70), "b.csv": fire(50)})
    null = run({name: np.full(N, 0.5) for name in labs})
    late = run({"a.csv": fire(39, 79), "b.csv": fire(64)})
    for profile in ns.NAB_PROFILES:
        assert perfect[profile].normalized == pytest.approx(100.0)
        assert null[profile].normalized == pytest.approx(0.0)
        assert 0 < late[profile].normalized < 100
    # standard: late = 2 * sigma(-1/10)/sigma(-1) + sigma(-1/15)/sigma(-1) out of 3 windows
    late_raw = (2 * sigma(-0.1) + sigma(-1 / 15)) / sigma(-1)
    assert late["standard"].score == pytest.approx(late_raw)
    assert late["standard"].normalized == pytest.approx(100 * (late_raw + 3) / 6)
    assert null["reward_low_FN_rate"].null_score == -6.0


def test_window_edges_must_be_data_timestamps():
    ts = stamps()
    with pytest.raises(ns.NabScoringError, match="window edge"):
        ns.LabeledFile.build("x.csv", ts, [(ts[10], ts[10] + datetime.timedelta(seconds=1))])
    with pytest.raises(ns.NabScoringError, match="scores for"):
        ns.score_file(labeled(), np.zeros(N - 1), 0.5, STANDARD)


def test_score_results_dir_reads_nab_layout(tmp_path):
    ts = stamps()
    labels = {"cat/one.csv": [[str(ts[40]) + ".000000", str(ts[49]) + ".000000"]],
              "cat/two.csv": []}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "res" / "cat").mkdir(parents=True)
    for name, scores in (("one.csv", fire(41)), ("two.csv", fire(60))):
        lines = ["timestamp,value,anomaly_score,raw_score,label"]
        lines += [f"{t},1.0,{s},0.0,0" for t, s in zip(ts, scores, strict=True)]
        (tmp_path / "res" / "cat" / f"mine_{name}").write_text("\n".join(lines) + "\n")
    report = ns.score_results_dir(str(tmp_path / "res"), "mine", str(tmp_path / "labels.json"))
    expected = sigma(-9 / 10) / sigma(-1) - 0.11
    assert report["standard"].score == pytest.approx(expected)
    assert report["standard"].normalized == pytest.approx(100 * (expected + 1) / 2)
    with pytest.raises(ns.NabScoringError, match="cannot read results"):
        ns.score_results_dir(str(tmp_path / "res"), "other", str(tmp_path / "labels.json"))
