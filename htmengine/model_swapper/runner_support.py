"""Support for ModelRunner: the model protocol and factory, loading a model from its
checkpoint, the per-model lock, input row decoding and error-result texts."""

from __future__ import annotations

import copy
import fcntl
import importlib
import json
import logging
import math
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from htmengine.model_swapper.checkpoint_manager import Checkpoint
from htmengine.model_swapper.checkpoint_store import CheckpointStore
from htmengine.model_swapper.errors import (
    ERR_INVALID_ARG,
    InvalidSwapperSettingError,
    ModelRunnerError,
)
from htmengine.model_swapper.messages import ModelInputRow, decodeDatetime

MAX_TRACEBACK_TAIL = 400
LOCKS_DIR_NAME = ".locks"


class AnomalyModel(Protocol):
    """What the runner needs from a model (htmengine.algorithms.model.HtmAnomalyModel)."""

    def run(self, timestamp: datetime, value: float) -> float: ...

    def to_bytes(self) -> bytes: ...


@runtime_checkable
class AnomalyModelFactory(Protocol):
    """What the runner needs to make models (the HtmAnomalyModel class itself)."""

    def create(self, modelConfig: dict[str, Any]) -> AnomalyModel: ...

    def from_bytes(self, data: bytes) -> AnomalyModel: ...


MODEL_FACTORY_ENV = "HTMENGINE_MODEL_FACTORY"
# Checkpoint attribute: the saved state is a new model made from the definition (the model
# bytes are empty) plus the checkpoint's replay rows — a new model's first checkpoints need
# no serialization.
FROM_DEFINITION_KEY = "fromDefinition"


def defaultModelFactory() -> AnomalyModelFactory:
    """htmengine.algorithms.model.HtmAnomalyModel (imported on first use), or the class named
    ``module:attribute`` by $HTMENGINE_MODEL_FACTORY (benchmarks of the swapper itself, tests
    of the plumbing with a trivial model)."""
    spec = os.environ.get(MODEL_FACTORY_ENV)
    if spec:
        moduleName, sep, attribute = spec.partition(":")
        if not sep or not moduleName or not attribute:
            raise InvalidSwapperSettingError(f"${MODEL_FACTORY_ENV} must be 'module:attribute', got {spec!r}")
        factory = getattr(importlib.import_module(moduleName), attribute)
        if not isinstance(factory, AnomalyModelFactory):
            raise InvalidSwapperSettingError(f"${MODEL_FACTORY_ENV} names {spec!r}, which has no create and "
                             f"from_bytes")
        return factory
    from htmengine.algorithms.model import HtmAnomalyModel
    return HtmAnomalyModel


def warm_up_model_code() -> None:
    """Run a throw-away HtmAnomalyModel for two records with a save and load between, so that
    its numba kernels are compiled (or loaded from their disk cache) before a real model
    needs them. Like defaultModelFactory, it imports the model code only when called: the
    processes that never run a model (the API, the runtime services) do not load the model
    code; the scheduler calls it once to fork its slots from the warm state."""
    from htmengine.algorithms.model import HtmAnomalyModel
    model = HtmAnomalyModel.from_range(0.0, 1.0)
    model.run(datetime(2000, 1, 1), 0.5)
    HtmAnomalyModel.from_bytes(model.to_bytes()).run(datetime(2000, 1, 1, 0, 5), 0.25)


_log = logging.getLogger(__name__)


class TemplateModelFactory:
    """Wraps a model factory: `create` deep-copies a pristine model made once per distinct
    modelConfig (the last `size` configs), which is several times cheaper than building one
    (a new model's random initialization is deterministic, so the copy is the same model).
    Falls back to the factory's own `create` if a model cannot be deep-copied."""

    def __init__(self, factory: AnomalyModelFactory, size: int = 4) -> None:
        self._factory = factory
        self._size = size
        self._templates: dict[str, AnomalyModel] = {}
        self._copyable = True

    def create(self, modelConfig: dict[str, Any]) -> AnomalyModel:
        """A new model for `modelConfig` (a copy of its template)."""
        if not self._copyable:
            return self._factory.create(modelConfig)
        key = json.dumps(modelConfig, sort_keys=True, default=repr)
        template = self._templates.pop(key, None)
        if template is None:
            template = self._factory.create(modelConfig)
        self._templates[key] = template          # most recently used last
        while len(self._templates) > self._size:
            del self._templates[next(iter(self._templates))]
        try:
            return copy.deepcopy(template)
        except (TypeError, copy.Error, NotImplementedError):
            _log.warning("models cannot be deep-copied; creating each one", exc_info=True)
            self._copyable = False
            self._templates.clear()
            return self._factory.create(modelConfig)

    def from_bytes(self, data: bytes) -> AnomalyModel:
        """The wrapped factory's from_bytes."""
        return self._factory.from_bytes(data)


def errorMessage(what: str, exc: BaseException) -> str:
    """'<UTC ISO time> - <what>: <exc> (tb: ...<last 400 characters of the traceback>)'."""
    tail = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_TAIL:]
    return f"{datetime.now(UTC).replace(tzinfo=None).isoformat()} - {what}: {exc!r} (tb: ...{tail})"


@contextmanager
def modelLock(root: Path, modelID: str, timeout: float = 30.0) -> Iterator[bool]:
    """Exclusive per-model lock (flock on `<root>/.locks/<modelID>`); yields False if not
    acquired within `timeout`. Released automatically when the holder dies."""
    lockDir = root / LOCKS_DIR_NAME
    lockDir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lockDir / modelID, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    acquired = False
                    break
                time.sleep(0.05)
        yield acquired
    finally:
        os.close(fd)


def loadCheckpointedModel(checkpointMgr: CheckpointStore, modelID: str,
                          modelFactory: AnomalyModelFactory | None = None,
                          definition: dict[str, Any] | None = None,
                          ) -> tuple[AnomalyModel, Checkpoint | None]:
    """The model as of its current checkpoint (saved bytes, then the checkpoint's replay
    rows run again), or a new one from its definition if it was never saved; with the
    checkpoint it came from. ModelNotFound if the model is not defined."""
    factory = modelFactory or defaultModelFactory()
    checkpoint = checkpointMgr.loadCheckpoint(modelID)
    if checkpoint is None or checkpoint.attributes.get(FROM_DEFINITION_KEY):
        if definition is None:
            definition = checkpointMgr.loadModelDefinition(modelID)
        model = factory.create(definition["modelConfig"])
        if checkpoint is None:
            return model, None
    else:
        model = factory.from_bytes(checkpoint.modelState)
    for encodedTime, value in checkpoint.attributes.get("replayRows", []):
        model.run(decodeDatetime(encodedTime), math.nan if value is None else value)
    return model, checkpoint


class InputRowDecoder:
    """Finds the timestamp and value in an input row using the model's inputRecordSchema
    (fields ``[name, type, special]``; htmengine sends ``(timestamp, value)``)."""

    def __init__(self, inputRecordSchema: Any) -> None:
        self.timestampIndex, self.valueIndex = 0, 1
        if isinstance(inputRecordSchema, list | tuple):
            types = [f[1] if isinstance(f, list | tuple) and len(f) > 1 else None
                     for f in inputRecordSchema]
            if "datetime" in types:
                self.timestampIndex = types.index("datetime")
            numeric = [i for i, t in enumerate(types) if t in ("float", "int")]
            if numeric:
                self.valueIndex = numeric[0]

    def decode(self, row: ModelInputRow) -> tuple[datetime, float]:
        """(timestamp, value) of a row; ModelRunnerError(ERR_INVALID_ARG) naming the field."""
        data = row.data
        if len(data) <= max(self.timestampIndex, self.valueIndex):
            raise ModelRunnerError(ERR_INVALID_ARG,
                                   f"row {row.rowID}: data has {len(data)} fields, expected "
                                   f"timestamp at {self.timestampIndex} and value at "
                                   f"{self.valueIndex}")
        timestamp, value = data[self.timestampIndex], data[self.valueIndex]
        if not isinstance(timestamp, datetime):
            raise ModelRunnerError(ERR_INVALID_ARG,
                                   f"row {row.rowID}: data[{self.timestampIndex}] must be a "
                                   f"datetime, got {timestamp!r}")
        if value is None:
            return timestamp, math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ModelRunnerError(ERR_INVALID_ARG,
                                   f"row {row.rowID}: data[{self.valueIndex}] must be a "
                                   f"number, got {value!r}")
        return timestamp, float(value)
