"""Error codes carried in model swapper results, and the exceptions of the model swapper.

The numeric codes travel inside `mcR` / `iRv2` result items and keep the original engine's
values, defined once in `htmengine.htmengineerrno`, so result consumers can compare against
either directly.
"""

from __future__ import annotations

from enum import IntEnum

from htmengine import htmengineerrno
from htmengine.exceptions import (
    HTMEngineError,
    InvalidInputError,
    ObjectAlreadyExistsBase,
    ObjectNotFoundError,
)


class ModelSwapperStatus(IntEnum):
    """Status codes of command and inference results (0 = success)."""

    SUCCESS = htmengineerrno.SUCCESS
    ERR = htmengineerrno.ERR
    ERR_MODEL_ALREADY_EXISTS = htmengineerrno.ERR_MODEL_ALREADY_EXISTS
    ERR_NO_SUCH_MODEL = htmengineerrno.ERR_NO_SUCH_MODEL
    ERR_INVALID_ARG = htmengineerrno.ERR_INVALID_ARG
    ERR_ROW_FAILED = htmengineerrno.ERR_ROW_FAILED


SUCCESS = ModelSwapperStatus.SUCCESS
ERR = ModelSwapperStatus.ERR
ERR_MODEL_ALREADY_EXISTS = ModelSwapperStatus.ERR_MODEL_ALREADY_EXISTS
ERR_NO_SUCH_MODEL = ModelSwapperStatus.ERR_NO_SUCH_MODEL
ERR_INVALID_ARG = ModelSwapperStatus.ERR_INVALID_ARG
ERR_ROW_FAILED = ModelSwapperStatus.ERR_ROW_FAILED


class ModelSwapperError(HTMEngineError):
    """Base of the model swapper's own errors."""


class ModelNotFound(ModelSwapperError, ObjectNotFoundError):
    """The model (its input queue or its checkpoint entry) does not exist; deleted already?"""


class ModelAlreadyExists(ModelSwapperError, ObjectAlreadyExistsBase):
    """A checkpoint entry for the model id already exists."""


class InvalidMessageError(ModelSwapperError, ValueError):
    """A request/result message or item is malformed; the message names the bad field."""


class InvalidSwapperSettingError(ModelSwapperError, ValueError):
    """A model-swapper.conf option (or a setting given in its place) is out of its range."""


class CheckpointCorruptError(ModelSwapperError):
    """A checkpoint entry exists but its files are unreadable or inconsistent."""


class ModelRunnerError(ModelSwapperError):
    """A request failed with a specific result status code (`status`, never SUCCESS)."""

    def __init__(self, status: ModelSwapperStatus, message: str) -> None:
        if status == SUCCESS:
            raise InvalidInputError("ModelRunnerError status must be an error code, not SUCCESS")
        super().__init__(f"{status.name}: {message}")
        self.status = status
