"""Messages of the model results fanout exchange: composition, schema validation and the
(zlib-compressed JSON) wire form.

Consumers bind a queue to the exchange (application.conf ``[metric_streamer]
results_exchange_name``) and decode each body with `deserializeModelResult`. A message whose
AMQP headers carry ``dataType: model-cmd-result`` is a model command result
(json_schema/model_command_result_amqp_message.json); any other is a batch of scored rows
(json_schema/model_inference_results_msg_schema.json).
"""

from __future__ import annotations

import calendar
import functools
import json
import zlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema

from htmengine.exceptions import InvalidInputError

SCHEMA_DIR = Path(__file__).resolve().parent / "json_schema"
INFERENCE_RESULTS_SCHEMA = "model_inference_results_msg_schema.json"
COMMAND_RESULT_SCHEMA = "model_command_result_amqp_message.json"
COMMAND_RESULT_HEADERS = {"dataType": "model-cmd-result"}


@functools.cache
def _validator(name: str) -> jsonschema.Draft7Validator:
    schemaDoc = json.loads((SCHEMA_DIR / name).read_text())
    jsonschema.Draft7Validator.check_schema(schemaDoc)
    return jsonschema.Draft7Validator(schemaDoc)


def validateMessage(message: dict[str, Any], schemaName: str) -> None:
    """InvalidInputError naming the field when `message` breaks the schema `schemaName`."""
    error = jsonschema.exceptions.best_match(_validator(schemaName).iter_errors(message))
    if error is not None:
        where = "message" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise InvalidInputError(f"{schemaName}: {where}: {error.message}")


def epochSeconds(timestamp: datetime) -> int:
    """Unix time of a naive UTC datetime."""
    return calendar.timegm(timestamp.utctimetuple())


def composeInferenceResultsMessage(metric: Any, rows: Iterable[Any]) -> dict[str, Any]:
    """The exchange message for scored rows of `metric` (a metric row with uid, name,
    description, server, location, datasource, parameters); `rows` have rowid, timestamp,
    metric_value, raw_anomaly_score, anomaly_score, multi_step_best_predictions."""
    parameters = json.loads(metric.parameters) if metric.parameters else {}
    return {
        "metric": {
            "uid": metric.uid,
            "name": metric.name,
            "description": metric.description,
            "resource": metric.server,
            "location": metric.location,
            "datasource": metric.datasource,
            "spec": parameters.get("metricSpec", {}),
        },
        "results": [
            {
                "rowid": row.rowid,
                "ts": epochSeconds(row.timestamp),
                "value": row.metric_value,
                "rawAnomaly": row.raw_anomaly_score,
                "anomaly": row.anomaly_score,
                "multiStepBestPredictions": row.multi_step_best_predictions,
            }
            for row in rows
        ],
    }


def composeCommandResultMessage(modelId: str, result: Any,
                                metric: Any | None = None) -> dict[str, Any]:
    """The exchange message for a ModelCommandResult; with `metric` (name, server,
    parameters) a successful defineModel gets ``modelInfo``."""
    message: dict[str, Any] = {
        "method": result.method,
        "modelId": modelId,
        "commandId": str(result.commandID),
        "status": int(result.status),
        "errorMessage": result.errorMessage,
    }
    if (result.method == "defineModel" and result.status == 0 and metric is not None
            and metric.parameters):
        message["modelInfo"] = {"metricName": metric.name, "resource": metric.server,
                                "modelSpec": json.loads(metric.parameters)}
    return message


def serializeModelResult(message: dict[str, Any]) -> bytes:
    """Wire form of an exchange message: zlib-compressed UTF-8 JSON."""
    return zlib.compress(json.dumps(message).encode("utf-8"))


def deserializeModelResult(payload: bytes) -> dict[str, Any]:
    """Decode a results exchange message body; InvalidInputError if it is not one."""
    try:
        decoded: dict[str, Any] = json.loads(zlib.decompress(payload))
        return decoded
    except (zlib.error, ValueError) as error:
        raise InvalidInputError(f"not a model result message: {error}") from None
