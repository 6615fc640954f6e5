"""Aggregated copies of a sensor: retention policies + continuous queries made by one call."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from influxhtm import InfluxHtmInputError
from influxhtm.retention import continuousQueryName, listContinuousQueries

pytestmark = pytest.mark.influx

# Recent data, so that it lies within the 52-week retention used below.
START = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)


def test_one_call_creates_policies_queries_and_backfills(influx_client, influx_server,
                                                         influx_database):
    sensor = influx_client.createSensor("power", 'coffee "machine"')
    neighbour = influx_client.createSensor("power", "kettle")
    points = [{"time": START + timedelta(minutes=i), "value": float(i % 17)}
              for i in range(120)]
    sensor.write(points)
    neighbour.write([{"time": START, "value": 1000.0}])

    copies = sensor.createAggregatedCopies(["10m", "1h"], method="mean", duration="52w")
    assert set(copies) == {"10m", "1h"}
    policies = {rp["name"]: rp["duration"]
                for rp in influx_server.get_list_retention_policies(influx_database)}
    assert policies["htm_10m"] == policies["htm_1h"] == "8736h0m0s"
    assert listContinuousQueries(sensor) == sorted(
        continuousQueryName(sensor, period, "mean") for period in ("10m", "1h"))
    assert listContinuousQueries(neighbour) == []

    ten = copies["10m"]
    assert ten.getRetentionPolicy() == "htm_10m"
    rows = ten.getData()
    assert [r["time"] for r in rows] == [START + timedelta(minutes=10 * i) for i in range(12)]
    assert [r["value"] for r in rows] == pytest.approx(
        [statistics.fmean(p["value"] for p in points[i:i + 10]) for i in range(0, 120, 10)])
    hourly = copies["1h"].getData()
    assert [r["value"] for r in hourly] == pytest.approx(
        [statistics.fmean(p["value"] for p in points[:60]),
         statistics.fmean(p["value"] for p in points[60:])])
    # The copy lives beside the original, which is unchanged.
    assert sensor.getData() == points

    # Idempotent; a second call may change the duration.
    again = sensor.createAggregatedCopies(["10m"], duration="INF")
    assert again["10m"].getData() == rows
    policies = {rp["name"]: rp["duration"]
                for rp in influx_server.get_list_retention_policies(influx_database)}
    assert policies["htm_10m"] == "0s"


def test_bad_periods_and_durations_are_rejected(influx_client):
    sensor = influx_client.createSensor("power", "oven")
    with pytest.raises(InfluxHtmInputError, match="not an InfluxQL duration"):
        sensor.createAggregatedCopies(["10 minutes"])
    with pytest.raises(InfluxHtmInputError, match="at least 1h"):
        sensor.createAggregatedCopies(["10m"], duration="30m")
    with pytest.raises(InfluxHtmInputError, match="at least one period"):
        sensor.createAggregatedCopies([])


def test_models_run_on_an_aggregated_copy(influx_client):
    sensor = influx_client.createSensor("power", "heater")
    sensor.write([{"time": START + timedelta(minutes=i), "value": float(i % 30)}
                  for i in range(300)])
    hourly = sensor.createAggregatedCopies(["1h"])["1h"]
    model = hourly.createHtmModel("on-copy", params={"minVal": 0, "maxVal": 30})
    model.writeResults((row["time"], {"anomalyScore": 0.25, "anomalyLikelihood": 0.5})
                       for row in hourly.getData())
    assert [m.getId() for m in hourly.listHtmModels()] == ["on-copy"]
    assert sensor.listHtmModels() == []
    combined = hourly.getCombinedSensorData()
    assert len(combined) == 5
    assert combined.column("anomalyScore") == [0.25] * 5
    # The same id on the original sensor is another model; deleting one keeps the other.
    original = sensor.createHtmModel("on-copy")
    original.writeResult(START, {"anomalyScore": 1.0})
    model.delete()
    assert hourly.listHtmModels() == []
    assert [r.anomalyScore for r in sensor.getHtmModel("on-copy").getResults()] == [1.0]
