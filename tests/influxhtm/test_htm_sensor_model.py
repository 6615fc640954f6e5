"""HTM model results in InfluxDB: round trip, parameters, deleting one model, results merged
with the input on time, and the PNG plot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from influxhtm import (
    HtmModelAlreadyExistsError,
    HtmModelNotFoundError,
    HtmModelResult,
    InfluxHtmInputError,
    plotCombinedData,
)

pytestmark = pytest.mark.influx

START = datetime(2024, 5, 1, tzinfo=UTC)


def _times(count: int) -> list[datetime]:
    return [START + timedelta(minutes=i) for i in range(count)]


def _fake_result(i: int) -> dict:
    return {"anomalyScore": (i % 5) / 4, "anomalyLikelihood": 0.5 + (i % 3) / 10}


def test_results_round_trip_in_both_result_shapes(influx_client):
    sensor = influx_client.createSensor("temperature", "Front Door")
    model = sensor.createHtmModel("model-id")
    times = _times(20)
    for i, when in enumerate(times[:10]):
        model.writeResult(when, _fake_result(i))
    # write(): each result carries its time; OPF-shaped results are accepted too.
    model.write([{"time": times[10], "anomalyScore": 0.5, "anomalyLikelihood": 0.7,
                  "prediction": 21.5}])
    model.write({"timestamp": times[11], "anomalyLikelihood": 0.9,
                 "inferences": {"anomalyScore": 1, "multiStepBestPredictions": {"1": 3.0}}})
    results = model.getResults()
    assert results[:10] == [HtmModelResult(t, _fake_result(i)["anomalyScore"],
                                           _fake_result(i)["anomalyLikelihood"], None)
                            for i, t in enumerate(times[:10])]
    assert results[10:] == [HtmModelResult(times[10], 0.5, 0.7, 21.5),
                            HtmModelResult(times[11], 1.0, 0.9, 3.0)]
    assert model.getResults(since=times[10]) == results[10:]
    assert model.getResults(limit=1) == results[-1:]
    maxima = model.getResults(aggregation={"method": "max", "period": "5m"})
    assert [(r.time, r.anomalyScore) for r in maxima] == [(times[0], 1.0), (times[5], 1.0),
                                                          (times[10], 1.0)]
    # Results are stored with the sensor's component and the model id as tags.
    assert model.getMeasurement() == "temperature_model"
    assert model.getTags() == {"component": "Front Door", "htm_model_id": "model-id"}
    with pytest.raises(InfluxHtmInputError, match="no anomalyScore"):
        model.writeResult(times[12], {"anomalyLikelihood": 0.5})
    with pytest.raises(InfluxHtmInputError, match="no 'time'"):
        model.write({"anomalyScore": 0.5})


def test_models_are_registered_with_their_params(influx_client):
    sensor = influx_client.createSensor("power", "fridge")
    first = sensor.createHtmModel("a", params={"minVal": 0, "maxVal": 100,
                                               "note": "größer \"quoted\" \\ value"})
    sensor.createHtmModel("b", params={"minVal": 0, "maxVal": 50})
    assert [m.getId() for m in sensor.listHtmModels()] == ["a", "b"]
    assert sensor.getHtmModel("a").getParams() == first.getParams() == {
        "minVal": 0, "maxVal": 100, "note": "größer \"quoted\" \\ value"}
    with pytest.raises(HtmModelAlreadyExistsError, match="'a'"):
        sensor.createHtmModel("a")
    with pytest.raises(HtmModelNotFoundError, match="'zzz'"):
        sensor.getHtmModel("zzz")
    with pytest.raises(HtmModelNotFoundError, match="2 HTM models"):
        sensor.getHtmModel()
    # Models are per sensor: the same id on another component is another model.
    other = influx_client.createSensor("power", "oven")
    assert other.listHtmModels() == []
    other.createHtmModel("a")
    # Result series do not show up as sensors.
    first.writeResult(START, {"anomalyScore": 0.1, "anomalyLikelihood": 0.2})
    sensor.write({"time": START, "value": 1.0})
    assert [str(s) for s in influx_client.listSensors()] == ["fridge power"]


def test_deleting_one_model_leaves_the_others_and_the_data(influx_client):
    sensor = influx_client.createSensor("power", "coffee-machine")
    other_sensor = influx_client.createSensor("power", "kettle")
    times = _times(10)
    sensor.write([{"time": t, "value": float(i)} for i, t in enumerate(times)])
    keep, drop = sensor.createHtmModel("keep"), sensor.createHtmModel("drop")
    same_id_elsewhere = other_sensor.createHtmModel("drop")
    for model in (keep, drop, same_id_elsewhere):
        model.writeResults((t, _fake_result(i)) for i, t in enumerate(times))
    drop.delete()
    assert [m.getId() for m in sensor.listHtmModels()] == ["keep"]
    assert drop.getResults() == []
    assert len(keep.getResults()) == 10
    assert len(same_id_elsewhere.getResults()) == 10
    assert [m.getId() for m in other_sensor.listHtmModels()] == ["drop"]
    assert len(sensor.getData()) == 10
    # The id is free again.
    sensor.createHtmModel("drop")


def test_combined_data_is_aligned_on_time(influx_client, tmp_path):
    sensor = influx_client.createSensor("temperature", "attic")
    times = _times(30)
    sensor.write([{"time": t, "value": float(i)} for i, t in enumerate(times)])
    plain = sensor.getCombinedSensorData()
    assert plain.modelId is None
    assert plain.column("value") == [float(i) for i in range(30)]
    assert set(plain.column("anomalyLikelihood")) == {None}

    model = sensor.createHtmModel("m")
    # Results for every other input point, plus one result outside the requested slice.
    model.writeResults((t, _fake_result(i)) for i, t in enumerate(times) if i % 2 == 0)
    model.writeResult(START - timedelta(days=1), {"anomalyScore": 1.0})
    data = sensor.getCombinedSensorData(since=times[0], until=times[9])
    assert data.columns == ("time", "value", "anomalyScore", "anomalyLikelihood", "prediction")
    assert data.modelId == "m"
    assert data.times() == times[:10]
    for i, row in enumerate(data):
        assert row["value"] == float(i)
        expected = _fake_result(i) if i % 2 == 0 else {}
        assert row["anomalyScore"] == expected.get("anomalyScore")
        assert row["anomalyLikelihood"] == expected.get("anomalyLikelihood")

    tens = sensor.getCombinedSensorData(aggregation={"method": "mean", "period": "10m"})
    assert tens.times() == [times[0], times[10], times[20]]
    assert tens.column("value") == [4.5, 14.5, 24.5]
    assert tens.column("anomalyScore") == pytest.approx([
        sum(_fake_result(i)["anomalyScore"] for i in range(b, b + 10, 2)) / 5
        for b in (0, 10, 20)])

    png = plotCombinedData(data, tmp_path / "plots" / "attic.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert sensor.plot(tmp_path / "via_sensor.png").exists()
    with pytest.raises(InfluxHtmInputError, match=r"\.png"):
        plotCombinedData(data, tmp_path / "attic.jpg")

    sensor.createHtmModel("second")
    with pytest.raises(HtmModelNotFoundError, match="pass modelId"):
        sensor.getCombinedSensorData()
    assert sensor.getCombinedSensorData(modelId="m").column("anomalyScore")[0] == 0.0


@pytest.mark.parametrize("model_id", ["it's \"m\"", "x' OR '1'='1", "模型 1, =2",
                                      "a') ; DROP SERIES FROM /.*/ ; --"])
def test_hostile_model_ids_round_trip_and_delete_only_themselves(influx_client, model_id):
    sensor = influx_client.createSensor("temp", "room")
    times = _times(4)
    sensor.write([{"time": t, "value": 1.0} for t in times])
    bystander = sensor.createHtmModel("bystander")
    bystander.writeResults((t, _fake_result(i)) for i, t in enumerate(times))
    model = sensor.createHtmModel(model_id, params={"id": model_id})
    model.writeResults((t, _fake_result(i)) for i, t in enumerate(times))
    assert sensor.getHtmModel(model_id).getParams() == {"id": model_id}
    assert len(sensor.getCombinedSensorData(modelId=model_id)) == 4
    model.delete()
    assert [m.getId() for m in sensor.listHtmModels()] == ["bystander"]
    assert len(bystander.getResults()) == 4
    assert len(sensor.getData()) == 4
