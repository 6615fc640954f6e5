"""The original engine's import path of the scalar metric helpers: the same functions and
messages as `htmengine.pipeline.scalar_metric_utils` (one implementation)."""

from htmengine.pipeline.scalar_metric_utils import (
    _INCONSISTENT_PREDICTED_FIELD_NAME_MSG,
    _MIN_MAX_MSG,
    _MUTEX_MODEL_SPEC_MSG,
    _NO_INFERENCE_ARGS_MSG,
    _NO_TIMESTAMP_FIELD_NAME_MSG,
    _NO_VALUE_FIELD_NAME_MSG,
    MODEL_CREATION_RECORD_THRESHOLD,
    checkModelParamsSpec,
    defineModelLocked,
    describeModelStart,
    generateSwarmParams,
    generateSwarmParamsFromCompleteModelParams,
    setPendingData,
)

__all__ = [
    "MODEL_CREATION_RECORD_THRESHOLD",
    "_INCONSISTENT_PREDICTED_FIELD_NAME_MSG",
    "_MIN_MAX_MSG",
    "_MUTEX_MODEL_SPEC_MSG",
    "_NO_INFERENCE_ARGS_MSG",
    "_NO_TIMESTAMP_FIELD_NAME_MSG",
    "_NO_VALUE_FIELD_NAME_MSG",
    "checkModelParamsSpec",
    "defineModelLocked",
    "describeModelStart",
    "generateSwarmParams",
    "generateSwarmParamsFromCompleteModelParams",
    "setPendingData",
]
