"""Model parameters of the scalar-metric-with-time-of-day anomaly model.

``getScalarMetricWithTimeOfDayAnomalyParams`` returns the same structure and values as NuPIC's
``cluster_params`` function with its ``best_single_metric_anomaly_params_{cpp,tm_cpp}.json``
files, plus the ``inputRecordSchema`` that htmengine's ``scalar_metric_utils`` adds (here as
JSON-friendly ``[name, type, special]`` triples, like NuPIC's ``FieldMetaInfo`` tuples).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from htmengine.exceptions import InvalidInputError

DEFAULT_MIN_RESOLUTION = 0.001
NUM_BUCKETS = 130.0

INPUT_RECORD_SCHEMA = [["c0", "datetime", "T"], ["c1", "float", ""]]

_SP_PARAMS = {
    "spatialImp": "cpp",
    "potentialPct": 0.8,
    "columnCount": 2048,
    "globalInhibition": 1,
    "inputWidth": 0,
    "boostStrength": 0.0,
    "numActiveColumnsPerInhArea": 40,
    "seed": 1956,
    "spVerbosity": 0,
    "synPermActiveInc": 0.003,
    "synPermConnected": 0.2,
    "synPermInactiveDec": 0.0005,
}

_TM_PARAMS_CPP = {
    "activationThreshold": 13,
    "cellsPerColumn": 32,
    "columnCount": 2048,
    "globalDecay": 0.0,
    "initialPerm": 0.21,
    "inputWidth": 2048,
    "maxAge": 0,
    "maxSegmentsPerCell": 128,
    "maxSynapsesPerSegment": 32,
    "minThreshold": 10,
    "newSynapseCount": 20,
    "outputType": "normal",
    "pamLength": 3,
    "permanenceDec": 0.1,
    "permanenceInc": 0.1,
    "seed": 1960,
    "temporalImp": "cpp",
    "verbosity": 0,
}

_TM_PARAMS_TM_CPP = {
    "activationThreshold": 20,
    "cellsPerColumn": 32,
    "columnCount": 2048,
    "globalDecay": 0.0,
    "initialPerm": 0.24,
    "inputWidth": 2048,
    "maxAge": 0,
    "maxSegmentsPerCell": 128,
    "maxSynapsesPerSegment": 128,
    "minThreshold": 13,
    "newSynapseCount": 31,
    "outputType": "normal",
    "permanenceDec": 0.008,
    "permanenceInc": 0.04,
    "predictedSegmentDecrement": 0.001,
    "seed": 1960,
    "temporalImp": "tm_cpp",
    "verbosity": 0,
}


def _base_params(tm_params: dict[str, Any]) -> dict[str, Any]:
    """The parameter set before the value encoder's resolution is filled in."""
    return {
        "inferenceArgs": {
            "predictionSteps": [1],
            "predictedField": "c1",
            "inputPredictedField": "auto",
        },
        "modelConfig": {
            "aggregationInfo": {
                "seconds": 0, "fields": [], "months": 0, "days": 0, "years": 0, "hours": 0,
                "microseconds": 0, "weeks": 0, "minutes": 0, "milliseconds": 0,
            },
            "model": "HTMPrediction",
            "version": 1,
            "predictAheadTime": None,
            "modelParams": {
                "inferenceType": "TemporalAnomaly",
                "sensorParams": {
                    "encoders": {
                        "c0_timeOfDay": {
                            "type": "DateEncoder",
                            "timeOfDay": [21, 9.49],
                            "fieldname": "c0",
                            "name": "c0",
                        },
                        "c0_dayOfWeek": None,
                        "c0_weekend": None,
                        "c1": {
                            "name": "c1",
                            "fieldname": "c1",
                            "numBuckets": NUM_BUCKETS,
                            "seed": 42,
                            "type": "RandomDistributedScalarEncoder",
                        },
                    },
                    "sensorAutoReset": None,
                    "verbosity": 0,
                },
                "spEnable": True,
                "spParams": copy.deepcopy(_SP_PARAMS),
                "trainSPNetOnlyIfRequested": False,
                "tmEnable": True,
                "tmParams": copy.deepcopy(tm_params),
                "clEnable": False,
                "clParams": {
                    "alpha": 0.035828933612157998,
                    "regionName": "SDRClassifierRegion",
                    "steps": "1",
                    "verbosity": 0,
                },
                "anomalyParams": {
                    "anomalyCacheRecords": None,
                    "autoDetectThreshold": None,
                    "autoDetectWaitRecords": 5030,
                },
            },
        },
    }


def _check_number(value: object, name: str) -> float:
    """A finite real number, or InvalidInputError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _range_from_data(
        metricData: Sequence[float] | npt.NDArray[Any] | None) -> tuple[float, float]:
    """NuPIC's ``_rangeGen``: data min/max widened by one standard deviation (1 if flat)."""
    if metricData is None:
        raise InvalidInputError("metricData is required when minVal or maxVal is not given")
    try:
        data = np.asarray(metricData, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InvalidInputError("metricData must be a sequence of numbers") from exc
    if data.size == 0:
        raise InvalidInputError("metricData must not be empty")
    if not np.all(np.isfinite(data)):
        raise InvalidInputError("metricData must contain only finite numbers")
    spread = float(np.std(data))
    if spread == 0:
        spread = 1.0
    return float(np.min(data)) - spread, float(np.max(data)) + spread


def getScalarMetricWithTimeOfDayAnomalyParams(
        metricData: Sequence[float] | npt.NDArray[Any] | None = None,
        minVal: float | None = None, maxVal: float | None = None,
        minResolution: float | None = None,
        tmImplementation: str = "cpp") -> dict[str, Any]:
    """Params of a scalar anomaly model with time of day, as NuPIC's ``cluster_params``.

    ``metricData`` is only used to derive ``minVal``/``maxVal`` when either is missing.
    Returns ``{"modelConfig", "inferenceArgs", "inputRecordSchema"}``; the value encoder's
    resolution is ``max(minResolution, (maxVal - minVal) / 130)``.
    """
    if minResolution is None:
        minResolution = DEFAULT_MIN_RESOLUTION
    minResolution = _check_number(minResolution, "minResolution")
    if minResolution <= 0:
        raise InvalidInputError(f"minResolution must be positive, got {minResolution!r}")
    if tmImplementation == "cpp":
        tm_params = _TM_PARAMS_CPP
    elif tmImplementation == "tm_cpp":
        tm_params = _TM_PARAMS_TM_CPP
    else:
        raise InvalidInputError(
            f"Invalid tmImplementation {tmImplementation!r}; use 'cpp' or 'tm_cpp'")
    if minVal is None or maxVal is None:
        computed_min, computed_max = _range_from_data(metricData)
        if minVal is None:
            minVal = computed_min
        if maxVal is None:
            maxVal = computed_max
    minVal = _check_number(minVal, "minVal")
    maxVal = _check_number(maxVal, "maxVal")
    if minVal > maxVal:
        raise InvalidInputError(f"minVal ({minVal}) must not be greater than maxVal ({maxVal})")
    if minVal == maxVal:
        maxVal = minVal + 1
    params = _base_params(tm_params)
    encoders = params["modelConfig"]["modelParams"]["sensorParams"]["encoders"]
    for encoder in encoders.values():
        if encoder is not None and encoder["type"] == "RandomDistributedScalarEncoder":
            num_buckets = encoder.pop("numBuckets")
            encoder["resolution"] = max(minResolution, (maxVal - minVal) / num_buckets)
    params["inputRecordSchema"] = copy.deepcopy(INPUT_RECORD_SCHEMA)
    return params
