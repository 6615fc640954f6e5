"""getScalarMetricWithTimeOfDayAnomalyParams: NuPIC's structure, values and argument checks."""

import json

import numpy as np
import pytest

from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams
from htmengine.exceptions import InvalidInputError


def _rdse(params):
    return params["modelConfig"]["modelParams"]["sensorParams"]["encoders"]["c1"]


def test_structure_matches_nupic():
    params = getScalarMetricWithTimeOfDayAnomalyParams(metricData=[0], minVal=0.0, maxVal=100.0)
    assert set(params) == {"modelConfig", "inferenceArgs", "inputRecordSchema"}
    config = params["modelConfig"]
    assert config["model"] == "HTMPrediction" and config["version"] == 1
    assert config["predictAheadTime"] is None
    model_params = config["modelParams"]
    assert model_params["inferenceType"] == "TemporalAnomaly"
    encoders = model_params["sensorParams"]["encoders"]
    assert encoders["c0_timeOfDay"] == {"type": "DateEncoder", "timeOfDay": [21, 9.49],
                                        "fieldname": "c0", "name": "c0"}
    assert encoders["c0_dayOfWeek"] is None and encoders["c0_weekend"] is None
    assert encoders["c1"] == {"name": "c1", "fieldname": "c1", "seed": 42,
                              "type": "RandomDistributedScalarEncoder",
                              "resolution": pytest.approx(100.0 / 130.0)}
    sp = model_params["spParams"]
    assert (sp["columnCount"], sp["numActiveColumnsPerInhArea"], sp["seed"]) == (2048, 40, 1956)
    assert (sp["potentialPct"], sp["synPermConnected"]) == (0.8, 0.2)
    assert (sp["synPermActiveInc"], sp["synPermInactiveDec"], sp["boostStrength"]) == (
        0.003, 0.0005, 0.0)
    tm = model_params["tmParams"]
    assert tm["temporalImp"] == "cpp" and tm["activationThreshold"] == 13
    assert (tm["minThreshold"], tm["newSynapseCount"], tm["pamLength"]) == (10, 20, 3)
    assert model_params["spEnable"] and model_params["tmEnable"]
    assert model_params["clEnable"] is False
    assert model_params["trainSPNetOnlyIfRequested"] is False
    assert params["inferenceArgs"] == {"predictionSteps": [1], "predictedField": "c1",
                                       "inputPredictedField": "auto"}
    assert params["inputRecordSchema"] == [["c0", "datetime", "T"], ["c1", "float", ""]]
    json.dumps(params)  # JSON-serialisable (sent over the message bus)


def test_resolution_has_a_floor():
    params = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0.0, maxVal=0.05)
    assert _rdse(params)["resolution"] == 0.001
    params = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0.0, maxVal=0.05,
                                                       minResolution=0.01)
    assert _rdse(params)["resolution"] == 0.01


def test_range_derived_from_metric_data_padded_by_one_std():
    data = [1.0, 2.0, 3.0, 4.0]
    std = float(np.std(data))
    params = getScalarMetricWithTimeOfDayAnomalyParams(metricData=data)
    assert _rdse(params)["resolution"] == pytest.approx((3.0 + 2 * std) / 130.0)
    params = getScalarMetricWithTimeOfDayAnomalyParams(metricData=data, minVal=0.0)
    assert _rdse(params)["resolution"] == pytest.approx((4.0 + std) / 130.0)


def test_flat_data_and_equal_bounds():
    params = getScalarMetricWithTimeOfDayAnomalyParams(metricData=[5.0, 5.0, 5.0])
    assert _rdse(params)["resolution"] == pytest.approx(2.0 / 130.0)  # std 0 → 1
    params = getScalarMetricWithTimeOfDayAnomalyParams(minVal=7.0, maxVal=7.0)
    assert _rdse(params)["resolution"] == pytest.approx(1.0 / 130.0)  # max = min + 1


def test_tm_cpp_variant():
    params = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0, maxVal=1,
                                                       tmImplementation="tm_cpp")
    tm = params["modelConfig"]["modelParams"]["tmParams"]
    assert tm["temporalImp"] == "tm_cpp" and tm["activationThreshold"] == 20
    assert tm["predictedSegmentDecrement"] == 0.001


def test_each_call_returns_an_independent_copy():
    a = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0, maxVal=1)
    a["modelConfig"]["modelParams"]["spParams"]["seed"] = 1
    b = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0, maxVal=1)
    assert b["modelConfig"]["modelParams"]["spParams"]["seed"] == 1956


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"tmImplementation": "py"}, "tmImplementation"),
        ({}, "metricData"),
        ({"metricData": []}, "metricData"),
        ({"metricData": ["a"]}, "metricData"),
        ({"minVal": "0", "maxVal": 1}, "minVal"),
        ({"minVal": 0, "maxVal": float("nan")}, "maxVal"),
        ({"minVal": 2, "maxVal": 1}, "minVal"),
        ({"minVal": 0, "maxVal": 1, "minResolution": 0}, "minResolution"),
    ],
)
def test_bad_arguments_raise_naming_the_input(kwargs, name):
    with pytest.raises(InvalidInputError, match=name):
        getScalarMetricWithTimeOfDayAnomalyParams(**kwargs)
