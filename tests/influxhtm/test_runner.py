"""Running htmengine's HTM model through influxhtm: a batch over a NAB series gives exactly
the scores of running the model directly, slices continue the same model, aggregated runs,
recorded parameters, and live follow of newly written points."""

from __future__ import annotations

import csv
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
from htmengine.algorithms.model import HtmAnomalyModel
from influxhtm import InfluxHtmInputError, runner

pytestmark = pytest.mark.influx

REPO_ROOT = Path(__file__).resolve().parents[2]
NAB_DATA = Path(os.environ.get("NAB_DATA", REPO_ROOT.parent / "shared" / "nab" / "data"))
NAB_FILE = NAB_DATA / "artificialWithAnomaly" / "art_daily_jumpsup.csv"
LIKELIHOOD = {"learningPeriod": 100, "estimationSamples": 50, "historicWindowSize": 8640,
              "reestimationPeriod": 100}


def _nab_rows(count: int) -> list[tuple[datetime, float]]:
    if not NAB_FILE.exists():
        pytest.fail(f"NAB data file {NAB_FILE} is missing")
    with NAB_FILE.open() as handle:
        rows = [(datetime.fromisoformat(r["timestamp"]), float(r["value"]))
                for r in csv.DictReader(handle)]
    return rows[:count]


def _direct_scores(rows, minVal, maxVal) -> list[tuple[float, float]]:
    """Raw score and likelihood of each row from the model and likelihood used directly."""
    model = HtmAnomalyModel.from_range(minVal, maxVal, 0.001)
    likelihood = AnomalyLikelihood(**LIKELIHOOD)
    scores = []
    for when, value in rows:
        raw = model.run(when, value)
        scores.append((raw, likelihood.anomalyProbability(value, raw, when)))
    return scores


def _write(sensor, rows) -> None:
    sensor.write([{"time": when, "value": value} for when, value in rows])


def test_batch_over_a_nab_series_matches_the_model_run_directly(influx_client, monkeypatch):
    monkeypatch.setattr(runner, "PAGE_SIZE", 300)  # several pages per slice
    rows = _nab_rows(1000)
    sensor = influx_client.createSensor("art_daily_jumpsup", "nab")
    _write(sensor, rows)
    model = sensor.createHtmModel("nab-run", params={"minVal": -20.0, "maxVal": 180.0,
                                                     "likelihood": LIKELIHOOD})
    # Two slices: the second continues the same in-memory model.
    assert model.process(until=rows[599][0]) == 600
    assert model.process() == 400
    assert model.process() == 0  # nothing new
    expected = _direct_scores(rows, -20.0, 180.0)
    results = model.getResults()
    assert [r.time.replace(tzinfo=None) for r in results] == [when for when, _ in rows]
    assert [(r.anomalyScore, r.anomalyLikelihood) for r in results] == expected
    assert model.getParams() == {"minVal": -20.0, "maxVal": 180.0, "minResolution": 0.001,
                                 "likelihood": LIKELIHOOD, "aggregation": None}
    combined = sensor.getCombinedSensorData(since=rows[500][0], until=rows[509][0])
    assert combined.column("value") == [value for _, value in rows[500:510]]
    assert combined.column("anomalyScore") == [raw for raw, _ in expected[500:510]]
    assert combined.column("anomalyLikelihood") == [lik for _, lik in expected[500:510]]


def test_parameter_sets_are_recorded_and_compared_on_one_sensor(influx_client):
    rows = _nab_rows(300)
    sensor = influx_client.createSensor("art_daily_jumpsup", "nab")
    _write(sensor, rows)
    auto = sensor.createHtmModel("auto-range", params={"likelihood": LIKELIHOOD})
    hourly = sensor.createHtmModel("hourly", params={"minVal": 0, "maxVal": 200,
                                                     "likelihood": LIKELIHOOD})
    assert auto.process() == 300
    low = min(v for _, v in rows)
    high = max(v for _, v in rows)
    params = auto.getParams()
    assert params["minVal"] == pytest.approx(low - 0.2 * (high - low))
    assert params["maxVal"] == pytest.approx(high + 0.2 * (high - low))
    assert [(r.anomalyScore, r.anomalyLikelihood) for r in auto.getResults()] \
        == _direct_scores(rows, params["minVal"], params["maxVal"])

    # 300 five-minute points = 25 hourly buckets; results at the bucket times.
    assert hourly.process(aggregation="1h") == 25
    assert hourly.getParams()["aggregation"] == {"method": "mean", "period": "1h"}
    buckets = [rows[i:i + 12] for i in range(0, 300, 12)]
    means = [(b[0][0], statistics.fmean(v for _, v in b)) for b in buckets]
    results = hourly.getResults()
    assert [r.time.replace(tzinfo=None) for r in results] == [when for when, _ in means]
    direct = _direct_scores(means, 0, 200)
    assert [r.anomalyScore for r in results] == [raw for raw, _ in direct]
    combined = sensor.getCombinedSensorData(aggregation="1h", modelId="hourly")
    assert combined.column("anomalyScore") == [raw for raw, _ in direct]
    assert combined.column("value") == pytest.approx([mean for _, mean in means])
    with pytest.raises(InfluxHtmInputError, match="aggregation"):
        hourly.process(aggregation="10m")
    # Another object for the same model continues on the recorded aggregation...
    again = sensor.getHtmModel("hourly")
    with pytest.raises(InfluxHtmInputError, match="'period': '1h'.*not.*'10m'"):
        again.process(aggregation="10m")
    assert again.process(since=means[-1][0]) == 1  # a fresh model rescoring the last bucket
    assert [r.anomalyScore for r in hourly.getResults()] == [raw for raw, _ in direct[:-1]] \
        + [again.getResults()[-1].anomalyScore]
    # ...and cannot follow live points.
    with pytest.raises(InfluxHtmInputError, match="raw points only"):
        again.follow(maxPoints=1)
    late = sensor.createHtmModel("late", params={"minVal": 0, "maxVal": 200})
    assert late.process(since=rows[250][0], until=rows[289][0]) == 40
    assert late.process(since=rows[0][0]) == 10  # only what follows the last scored point
    assert late.getResults()[0].time.replace(tzinfo=None) == rows[250][0]
    assert [m.getId() for m in sensor.listHtmModels()] == ["auto-range", "hourly", "late"]


def test_follow_scores_points_as_they_are_written_and_stops_cleanly(influx_client):
    start = datetime(2024, 6, 1, tzinfo=UTC)
    rows = [(start + timedelta(minutes=5 * i), float(10 + (i % 12))) for i in range(90)]
    sensor = influx_client.createSensor("load", "live server")
    _write(sensor, rows[:40])
    model = sensor.createHtmModel("live", params={"minVal": 0, "maxVal": 40,
                                                  "likelihood": LIKELIHOOD})

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 60
        while len(model.getResults()) < count:
            assert time.monotonic() < deadline, f"follower did not reach {count} results"
            time.sleep(0.05)

    follower = model.startFollowing(pollInterval=0.05)
    wait_for(40)
    _write(sensor, rows[40:70])
    wait_for(70)
    for when, value in rows[70:]:  # one point at a time
        sensor.write({"time": when, "value": value})
    wait_for(90)
    assert follower.isRunning()
    started = time.monotonic()
    assert follower.stop() == 90
    assert time.monotonic() - started < 5
    assert not follower.isRunning()
    naive = [(when.replace(tzinfo=None), value) for when, value in rows]
    assert [(r.anomalyScore, r.anomalyLikelihood) for r in model.getResults()] \
        == _direct_scores(naive, 0, 40)
    # follow() in the caller's thread ends on idle timeout or point budget.
    _write(sensor, [(start + timedelta(days=1, minutes=i), 11.0) for i in range(5)])
    assert model.follow(pollInterval=0.05, maxPoints=3) == 3
    assert model.follow(pollInterval=0.05, idleTimeout=0.2) == 2
