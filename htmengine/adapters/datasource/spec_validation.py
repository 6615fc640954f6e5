"""Validation of model specs against the JSON schemas, with errors that name the bad field."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema

from htmengine.exceptions import InvalidInputError
from htmengine.pipeline.scalar_metric_utils import checkModelParamsSpec

_HERE = Path(__file__).resolve().parent
MODEL_SPEC_SCHEMA_PATH = _HERE / "model_spec_schema.json"
CUSTOM_METRIC_SPEC_SCHEMA_PATH = _HERE / "custom" / "custom_metric_spec_schema.json"


@functools.cache
def _validator(path: Path) -> jsonschema.Draft7Validator:
    schemaDoc = json.loads(path.read_text())
    jsonschema.Draft7Validator.check_schema(schemaDoc)
    return jsonschema.Draft7Validator(schemaDoc)


def _fieldPath(root: str, error: jsonschema.ValidationError) -> str:
    path = root
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _describe(root: str, error: jsonschema.ValidationError) -> str:
    where = _fieldPath(root, error)
    if error.validator == "additionalProperties":
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = sorted(schema.get("properties", {}))
        return f"{where}: {error.message}; allowed properties are {allowed}"
    if error.validator == "not" and error.validator_value == {
            "required": ["modelParams", "completeModelParams"]}:
        return f"{where}: specify either modelParams or completeModelParams, not both"
    if error.validator == "oneOf" and root.endswith("metricSpec"):
        return (f"{where}: must name the metric with exactly one of 'metric' (its name) or "
                f"'uid' (its id)")
    return f"{where}: {error.message}"


def validateAgainst(path: Path, document: Any, root: str) -> None:
    """Validate `document` against the schema at `path`; InvalidInputError listing every
    problem, each prefixed with the field path (e.g. ``modelSpec.modelParams.min``)."""
    errors = sorted(_validator(path).iter_errors(document),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise InvalidInputError("; ".join(_describe(root, e) for e in errors))


def validateModelSpec(modelSpec: Any) -> None:
    """Check a custom-metric modelSpec: the model-parameter rules with the original engine's
    messages (`scalar_metric_utils.checkModelParamsSpec`), then the generic schema, then the
    custom metricSpec."""
    if isinstance(modelSpec, dict):
        checkModelParamsSpec(modelSpec)
    validateAgainst(MODEL_SPEC_SCHEMA_PATH, modelSpec, "modelSpec")
    validateAgainst(CUSTOM_METRIC_SPEC_SCHEMA_PATH, modelSpec["metricSpec"],
                    "modelSpec.metricSpec")
    modelParams = modelSpec.get("modelParams") or {}
    if "min" in modelParams and not modelParams["max"] > modelParams["min"]:
        raise InvalidInputError(
            f"modelSpec.modelParams: max ({modelParams['max']!r}) must be greater than min "
            f"({modelParams['min']!r})")
