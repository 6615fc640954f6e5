"""Sensors against the real InfluxDB: write and read back, aggregation, time bounds,
first/last N points, listing, and names that could break or inject InfluxQL."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta, timezone

import pytest

from influxhtm import InfluxHtmInputError, InvalidNameError, SensorNotFoundError

pytestmark = pytest.mark.influx

START = datetime(2024, 5, 1, tzinfo=UTC)


def _series(count: int, step: timedelta = timedelta(minutes=1)) -> list[dict]:
    return [{"time": START + i * step, "value": float((i * 7) % 23) + 0.25}
            for i in range(count)]


def test_write_and_read_back_with_every_time_form(influx_client):
    sensor = influx_client.createSensor(measurement="power", component="coffee-machine")
    paris = timezone(timedelta(hours=2))
    written = sensor.write([
        {"time": datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=paris), "value": 1.5},
        {"time": datetime(2024, 5, 1, 10, 1), "value": 2},           # naive = UTC, int value
        {"time": START.timestamp() + 36.5 * 3600, "value": -3.25},   # epoch seconds
    ])
    assert written == 3
    sensor.write({"time": "2024-05-01T09:59:00+00:00", "value": 0.0})
    data = sensor.getData()
    assert data == [
        {"time": datetime(2024, 5, 1, 9, 59, tzinfo=UTC), "value": 0.0},
        {"time": datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=UTC), "value": 1.5},
        {"time": datetime(2024, 5, 1, 10, 1, tzinfo=UTC), "value": 2.0},
        {"time": datetime(2024, 5, 2, 12, 30, tzinfo=UTC), "value": -3.25},
    ]
    # A point at an existing time replaces it.
    sensor.write({"time": datetime(2024, 5, 1, 10, 1), "value": 4.0})
    assert [p["value"] for p in sensor.getData()] == [0.0, 1.5, 4.0, -3.25]


def test_since_until_are_inclusive_and_limit_takes_first_or_last(influx_client):
    sensor = influx_client.createSensor("temperature", "Front+Door")
    points = _series(2500)
    sensor.write(points)
    start, end = sensor.getTimeBounds()
    assert (start, end) == (points[0]["time"], points[-1]["time"])
    first = sensor.getData(since=start, limit=1000)
    last = sensor.getData(until=end, limit=1000)
    assert first == points[:1000]
    assert last == points[-1000:]
    assert sensor.getData(limit=3) == points[-3:]
    window = sensor.getData(since=points[10]["time"], until=points[20]["time"])
    assert window == points[10:21]
    assert sensor.getData(since=points[10]["time"], until=points[20]["time"], limit=2) \
        == points[10:12]
    with pytest.raises(InfluxHtmInputError, match="limit"):
        sensor.getData(limit=0)


def test_aggregation_by_period_and_by_method(influx_client):
    sensor = influx_client.createSensor("motion", "hallway")
    points = _series(60)  # one hour of minutes
    sensor.write(points)
    buckets = [points[i:i + 10] for i in range(0, 60, 10)]
    means = sensor.getData(aggregation="10m")
    assert [row["time"] for row in means] == [b[0]["time"] for b in buckets]
    assert [row["value"] for row in means] == pytest.approx(
        [statistics.fmean(p["value"] for p in b) for b in buckets])
    maxima = sensor.getData(aggregation={"method": "max", "period": "10m"})
    assert [row["value"] for row in maxima] == [max(p["value"] for p in b) for b in buckets]
    counted = sensor.getData(since=points[20]["time"], aggregation={"method": "count",
                                                                    "period": "30m"})
    assert [row["value"] for row in counted] == [10, 30]
    # Latest two buckets, returned in ascending order.
    assert [row["time"] for row in sensor.getData(aggregation="10m", limit=2)] \
        == [buckets[4][0]["time"], buckets[5][0]["time"]]
    assert influx_client.createSensor("motion", "elsewhere").getData(aggregation="10m") == []


def test_list_and_get_sensors(influx_client):
    assert influx_client.listSensors() == []
    influx_client.createSensor("temperature", "kitchen").write(_series(2))
    influx_client.createSensor("temperature", "attic").write(_series(2))
    influx_client.createSensor("humidity", "attic").write(_series(2))
    names = [(s.getMeasurement(), s.getComponent()) for s in influx_client.listSensors()]
    assert names == [("humidity", "attic"), ("temperature", "attic"),
                     ("temperature", "kitchen")]
    assert influx_client.getSensors() == influx_client.listSensors()
    sensor = influx_client.getSensor(measurement="temperature", component="attic")
    assert str(sensor) == "attic temperature"
    assert len(sensor.getData()) == 2
    with pytest.raises(SensorNotFoundError, match="'cellar'"):
        influx_client.getSensor("temperature", "cellar")
    assert influx_client.createSensor("temperature", "cellar").getTimeBounds() == (None, None)


HOSTILE = [
    ('we"ird \'measure\', x=1', "Frönt \"door\"; DROP DATABASE x --"),
    ("temp' OR '1'='1", "' OR component != '"),
    ("温度", "センサー 1,=2"),
    ('") ; DROP MEASUREMENT "x', "x') ; DROP SERIES FROM /.*/ ; --"),
]


@pytest.mark.parametrize("measurement, component", HOSTILE)
def test_hostile_names_round_trip_and_cannot_inject(influx_client, influx_server,
                                                    influx_database, measurement, component):
    bystander = influx_client.createSensor("x", "x")
    bystander.write(_series(3))
    sensor = influx_client.createSensor(measurement, component)
    sensor.write(_series(30))
    assert sensor.getData() == _series(30)
    assert len(sensor.getData(aggregation={"method": "max", "period": "10m"})) == 3
    assert sensor.getTimeBounds()[0] == START
    found = influx_client.getSensor(measurement, component)
    assert found == sensor
    assert sensor in influx_client.listSensors()
    # Nothing was dropped, and the bystander is not visible through the hostile sensor.
    assert influx_database in {d["name"] for d in influx_server.get_list_database()}
    assert bystander.getData() == _series(3)
    assert influx_client.createSensor(measurement, "x").getData() == []


def test_unstorable_names_and_bad_points_are_rejected_clearly(influx_client):
    with pytest.raises(InvalidNameError, match="backslash"):
        influx_client.createSensor("C:\\temp", "a")
    with pytest.raises(InvalidNameError, match="control character"):
        influx_client.createSensor("temp", "two\nlines")
    with pytest.raises(InfluxHtmInputError, match="both measurement and component"):
        influx_client.createSensor("temp")
    sensor = influx_client.createSensor("temp", "a")
    with pytest.raises(InfluxHtmInputError, match="point 1.*not a number"):
        sensor.write([{"time": 1, "value": 1.0}, {"time": 2, "value": "hot"}])
    with pytest.raises(InfluxHtmInputError, match="point 0.*not finite"):
        sensor.write({"time": 1, "value": float("inf")})
    with pytest.raises(InfluxHtmInputError, match="needs a 'time'"):
        sensor.write({"value": 1.0})
    with pytest.raises(InfluxHtmInputError, match="point 0 time"):
        sensor.write({"time": "soon", "value": 1.0})
    assert sensor.getData() == []
