"""CheckpointStore: what the scheduler, the slots and the runners need from the place where
model definitions and checkpoints are kept. `ModelCheckpointMgr` (a local directory,
model-checkpoint.conf [storage] root) is today's implementation; a store shared by schedulers
on several hosts (an object store, a database) implements the same calls, with the same
atomicity: `save` replaces a model's checkpoint as a whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from htmengine.model_swapper.checkpoint_manager import Checkpoint


class CheckpointStore(Protocol):
    """Model definitions and checkpoints, by model id (ModelNotFound / ModelAlreadyExists)."""

    @property
    def root(self) -> Path:
        """Local directory for per-model lock files (`runner_support.modelLock`)."""
        ...

    def define(self, modelID: str, definition: dict[str, Any], *,
               background: bool = False) -> None:
        """Create the model's entry with its definition (`background`: made durable while
        the caller goes on; every later call about the model waits for it)."""
        ...

    def settle(self, modelID: str | None = None) -> None:
        """Wait until a background define of the model (None: of all) is durable; its error."""
        ...

    def loadModelDefinition(self, modelID: str) -> dict[str, Any]:
        """The definition given to define()."""
        ...

    def hasModel(self, modelID: str) -> bool:
        """True if the model has an entry."""
        ...

    def getModelIDs(self) -> list[str]:
        """Every model with an entry."""
        ...

    def remove(self, modelID: str) -> None:
        """Delete the model's entry."""
        ...

    def clone(self, modelID: str, destModelID: str, modelState: bytes | None = None) -> None:
        """Copy definition and checkpoint (or `modelState`) to a new model."""
        ...

    def save(self, modelID: str, modelState: bytes | None, attributes: dict[str, Any]) -> int:
        """Atomically replace the checkpoint (None: keep the model bytes); its generation."""
        ...

    def loadCheckpoint(self, modelID: str) -> Checkpoint | None:
        """The current checkpoint, None if never saved."""
        ...

    def loadCheckpointAttributes(self, modelID: str) -> dict[str, Any]:
        """The current checkpoint's attributes ({} if never saved)."""
        ...
