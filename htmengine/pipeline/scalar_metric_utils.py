"""Model parameters and model start-up for scalar metrics (used by the datasource adapter and,
through it, by the metric storer when a PENDING_DATA metric has enough data).

Starting a model, in one transaction holding the metric row lock: check the status, save the
model parameters in ``metric.model_params`` and set CREATE_PENDING, send ``defineModel`` to the
model swapper; commit. Then the stored backlog is streamed by
`MetricStreamer.streamPendingRows` (the streaming mark starts at 0 with the new parameters),
so rows committed before the model existed reach it exactly like rows that arrive later.
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from htmengine.exceptions import InvalidInputError, MetricStatusChangedError
from htmengine.repository import queries, schema
from htmengine.repository.queries import MetricStatus

_log = logging.getLogger("htmengine.pipeline.scalar_metric_utils")

# Rows (one day at 5-minute samples) needed before min/max are estimated from the data.
MODEL_CREATION_RECORD_THRESHOLD = 288

# Error messages of generateSwarmParamsFromCompleteModelParams (the original's texts; the
# errors start with them and add detail after).
_MUTEX_MODEL_SPEC_MSG = "Specify either modelParams or completeModelParams but not both."
_NO_INFERENCE_ARGS_MSG = "inferenceArgs must be specified in completeModelParams."
_NO_TIMESTAMP_FIELD_NAME_MSG = "timestampFieldName must be specified in completeModelParams."
_NO_VALUE_FIELD_NAME_MSG = "valueFieldName must be specified in completeModelParams."
_INCONSISTENT_PREDICTED_FIELD_NAME_MSG = (
    "Inference args' predictedField must match complete model params' valueFieldName")
_MIN_MAX_MSG = "min and max params must both be None or non-None"


def _defaultParams(minVal: float, maxVal: float, minResolution: float | None) -> dict[str, Any]:
    from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams

    kwargs: dict[str, Any] = {"metricData": [0], "minVal": minVal, "maxVal": maxVal}
    if minResolution is not None:
        kwargs["minResolution"] = minResolution
    return getScalarMetricWithTimeOfDayAnomalyParams(**kwargs)


def generateSwarmParams(stats: dict[str, Any], classifierEnabled: bool = False
                        ) -> dict[str, Any] | None:
    """Model parameters ({modelConfig, inferenceArgs, inputRecordSchema}) for a scalar metric
    with encoder range `stats` {"min", "max", optional "minResolution"}; None when min or max
    is missing (the model must wait for data)."""
    minVal = stats.get("min")
    maxVal = stats.get("max")
    if minVal is None or maxVal is None:
        return None
    if not maxVal > minVal:
        raise InvalidInputError(f"max ({maxVal!r}) must be greater than min ({minVal!r})")
    params = _defaultParams(float(minVal), float(maxVal), stats.get("minResolution"))
    modelParams = params.get("modelConfig", {}).get("modelParams")
    if isinstance(modelParams, dict):
        modelParams["clEnable"] = bool(classifierEnabled)
    return params


def _renamedSchema(template: Any, timestampField: str, valueField: str) -> Any:
    """The default inputRecordSchema with its two field names replaced."""
    renamed = copy.deepcopy(template)
    for position, name in ((0, timestampField), (1, valueField)):
        entry = renamed[position]
        if isinstance(entry, dict):
            entry["name"] = name
        else:
            renamed[position] = [name, *list(entry)[1:]]
    return renamed


def checkModelParamsSpec(modelSpec: dict[str, Any]) -> None:
    """Check the model-parameter part of a model spec with the original's messages: modelParams
    and completeModelParams are exclusive; completeModelParams needs inferenceArgs,
    timestampFieldName and valueFieldName, and its predictedField must be valueFieldName;
    modelParams needs both min and max or neither.

    :raises InvalidInputError: (a ValueError) whose message starts with the original's text
    """
    complete = modelSpec.get("completeModelParams")
    if "modelParams" in modelSpec and complete is not None:
        raise InvalidInputError(f"{_MUTEX_MODEL_SPEC_MSG} modelSpec={modelSpec}")
    if isinstance(complete, dict):
        for key, message in (("inferenceArgs", _NO_INFERENCE_ARGS_MSG),
                             ("timestampFieldName", _NO_TIMESTAMP_FIELD_NAME_MSG),
                             ("valueFieldName", _NO_VALUE_FIELD_NAME_MSG)):
            if key not in complete:
                raise InvalidInputError(f"{message} modelSpec={modelSpec}")
        inferenceArgs = complete["inferenceArgs"]
        predicted = inferenceArgs.get("predictedField") if isinstance(inferenceArgs,
                                                                       dict) else None
        if predicted is not None and predicted != complete["valueFieldName"]:
            raise InvalidInputError(
                f"{_INCONSISTENT_PREDICTED_FIELD_NAME_MSG}: predictedField={predicted!r}, "
                f"valueFieldName={complete['valueFieldName']!r}")
    modelParams = modelSpec.get("modelParams")
    if isinstance(modelParams, dict) and (modelParams.get("min") is None) != (
            modelParams.get("max") is None):
        given = "min" if modelParams.get("min") is not None else "max"
        missing = "max" if given == "min" else "min"
        raise InvalidInputError(
            f"{_MIN_MAX_MSG}; modelSpec.modelParams: {given} given without {missing}")


def generateSwarmParamsFromCompleteModelParams(modelSpec: dict[str, Any]) -> dict[str, Any]:
    """Model parameters from a spec's ``completeModelParams`` (modelConfig, inferenceArgs,
    timestampFieldName, valueFieldName); InvalidInputError naming what is missing or
    inconsistent (see `checkModelParamsSpec`)."""
    checkModelParamsSpec(modelSpec)
    complete = modelSpec.get("completeModelParams")
    if not isinstance(complete, dict) or "modelConfig" not in complete:
        raise InvalidInputError("modelSpec.completeModelParams.modelConfig must be specified")
    template = _defaultParams(0.0, 1.0, None)["inputRecordSchema"]
    return {
        "modelConfig": copy.deepcopy(complete["modelConfig"]),
        "inferenceArgs": copy.deepcopy(complete["inferenceArgs"]),
        "inputRecordSchema": _renamedSchema(template, complete["timestampFieldName"],
                                            complete["valueFieldName"]),
    }


def describeModelStart(modelRange: dict[str, Any] | None) -> dict[str, Any]:
    """Keys kept next to the model parameters in ``metric.model_params`` (never sent to the
    model): ``modelRange`` (min, max, minResolution, when known) and ``createRequestedAt``
    (UTC, ISO 8601)."""
    described: dict[str, Any] = {
        "createRequestedAt": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")}
    if modelRange and modelRange.get("min") is not None:
        described["modelRange"] = {key: modelRange.get(key)
                                   for key in ("min", "max", "minResolution")}
    return described


def setPendingData(conn: sa.Connection, metricId: str, refStatus: int) -> None:
    """Move an UNMONITORED metric to PENDING_DATA (inside the caller's transaction)."""
    queries.setMetricStatus(conn, metricId, MetricStatus.PENDING_DATA, refStatus=refStatus)


def defineModelLocked(conn: sa.Connection, metricId: str, swarmParams: dict[str, Any],
                      swapper: Any, modelRange: dict[str, Any] | None = None) -> bool:
    """Inside a transaction that holds the metric row lock: save `swarmParams` (with the
    encoder range `modelRange` and the request time, for status reports), set CREATE_PENDING
    and ask the model swapper to define the model. Returns False (nothing done) if the model
    is already CREATE_PENDING or ACTIVE.

    :raises MetricStatusChangedError: the metric is in ERROR (or another unexpected status)
    """
    metric = queries.getMetricWithUpdateLock(conn, metricId, fields=[schema.metric.c.status])
    if metric.status in (MetricStatus.CREATE_PENDING, MetricStatus.ACTIVE):
        return False
    if metric.status not in (MetricStatus.UNMONITORED, MetricStatus.PENDING_DATA):
        raise MetricStatusChangedError(
            f"cannot start the model of metric {metricId}: status is {metric.status}")
    queries.updateMetricColumnsForRefStatus(
        conn, metricId, metric.status,
        {"status": int(MetricStatus.CREATE_PENDING),
         "model_params": json.dumps({**swarmParams, **describeModelStart(modelRange)})})
    swapper.defineModel(modelID=metricId, args=swarmParams, commandID=uuid.uuid4().hex)
    _log.info("Requested model creation for metric=%s", metricId)
    return True
