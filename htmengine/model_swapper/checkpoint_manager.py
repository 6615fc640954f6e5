"""Model checkpoint archive: one directory per model, every change atomic and durable.

Layout under the root (model-checkpoint.conf [storage] root)::

    .scratch/                      work area; every write is built here first
    <modelId>/
        version.txt                archive entry format version
        definition.json            the model definition (defineModel's args)
        current -> store_<generation>_<token>     symlink, swapped atomically
        store_<generation>_<token>/
            model.bin              the model's serialized state (HtmAnomalyModel.to_bytes());
                                   an incremental checkpoint (or a clone) hard-links the
                                   previous (source) one's; absent when the state is empty
                                   (attribute "emptyModel": a new model's first checkpoints)
            attributes.json        {"generation", "batchIds", "previousBatchIds",
                                    "replayRows" (rows to re-run after loading model.bin)}

A write builds files in `.scratch`, fsyncs them and their directory, renames the result into
place and fsyncs the parent. A new checkpoint store is renamed into the model directory, then
a fresh symlink made in `.scratch` is renamed over `current` (rename is atomic), the model
directory is fsynced, and only then is the previous store deleted. A crash at any point
leaves either the old or the new checkpoint, never a mix; unreferenced stores and dead
processes' scratch entries are swept later.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from htmengine.config import checkpoint_root
from htmengine.exceptions import InvalidInputError
from htmengine.model_swapper.errors import (
    CheckpointCorruptError,
    ModelAlreadyExists,
    ModelNotFound,
)

_log = logging.getLogger(__name__)

ENTRY_VERSION = "3"
SCRATCH_DIR_NAME = ".scratch"
VERSION_FILE_NAME = "version.txt"
DEFINITION_FILE_NAME = "definition.json"
CURRENT_LINK_NAME = "current"
STORE_PREFIX = "store_"
MODEL_FILE_NAME = "model.bin"
ATTRIBUTES_FILE_NAME = "attributes.json"
# attribute of a store whose model state is empty (b""): such a store has no model.bin
EMPTY_MODEL_KEY = "emptyModel"
# attributes describing the model state itself (kept by clone); the rest (batch ids) are not
CLONED_ATTRIBUTES = ("replayRows", "fromDefinition")


def _json_object(data: bytes) -> dict[str, Any]:
    """The JSON object in `data`; ValueError if it is not JSON or not an object."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Checkpoint:
    """One saved checkpoint: model bytes plus the attributes saved with them."""

    generation: int
    modelState: bytes
    attributes: dict[str, Any]


def validateModelId(modelID: Any) -> str:
    """A model id usable as one path component; InvalidInputError naming it otherwise."""
    if (not isinstance(modelID, str) or not modelID or modelID.startswith(".")
            or "/" in modelID or "\0" in modelID or "\n" in modelID or len(modelID) > 200):
        raise InvalidInputError(
            f"modelID must be a non-empty name without '/', NUL or newline, not starting "
            f"with '.', got {modelID!r}")
    return modelID


def _fsync_path(path: Path | str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "xb") as fileObj:
        fileObj.write(data)
        fileObj.flush()
        os.fsync(fileObj.fileno())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ModelCheckpointMgr:
    """Saves, loads, clones and removes model checkpoints under one root directory.

    One process at a time may write a given model (the scheduler guarantees it); different
    models may be written concurrently from different processes.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = Path(root) if root is not None else checkpoint_root()
        if not self._root.is_absolute():
            raise InvalidInputError(f"checkpoint root must be an absolute path: {self._root}")
        self._scratch = self._root / SCRATCH_DIR_NAME
        self._scratch.mkdir(parents=True, exist_ok=True)
        self._sweep_dead_scratch()
        # background defines (define(..., background=True)) not yet in place and durable
        self._defining: dict[str, Future[None]] = {}
        self._executor: ThreadPoolExecutor | None = None

    def settle(self, modelID: str | None = None) -> None:
        """Wait until a background define of the model (of every model: None) is in place
        and durable; raises the error it failed with (the entry is then absent)."""
        for pending in ([modelID] if modelID is not None else list(self._defining)):
            future = self._defining.pop(pending, None)
            if future is not None:
                future.result()

    @property
    def root(self) -> Path:
        """The archive's root directory."""
        return self._root

    # -- helpers ---------------------------------------------------------------------------

    def _model_dir(self, modelID: str) -> Path:
        path = self._root / validateModelId(modelID)
        self.settle(modelID)    # every use of a model's entry waits for its define
        return path

    def _existing_model_dir(self, modelID: str) -> Path:
        path = self._model_dir(modelID)
        if not (path / DEFINITION_FILE_NAME).is_file():
            raise ModelNotFound(f"Model {modelID!r} has no checkpoint entry in {self._root}")
        return path

    @contextmanager
    def _scratch_dir(self, label: str) -> Iterator[Path]:
        """A private scratch directory (named after this pid), removed afterwards."""
        path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{label[:40]}-", dir=self._scratch))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextmanager
    def _scratch_path(self, name: str) -> Iterator[Path]:
        """A fresh path in the scratch area (named after this pid) for one directory or link
        that is then renamed into place; whatever is left there on an error is removed (a
        crash's leftovers are swept as dead-pid scratch)."""
        path = self._scratch / f"{os.getpid()}-{uuid.uuid4().hex[:12]}-{name}"
        try:
            yield path
        except BaseException:
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
            raise

    def _sweep_dead_scratch(self) -> None:
        """Remove scratch entries left by processes that no longer run."""
        for entry in self._scratch.iterdir():
            pidText = entry.name.split("-", 1)[0]
            if pidText.isdigit() and not _pid_alive(int(pidText)):
                shutil.rmtree(entry, ignore_errors=True)

    def _rename_into_place(self, source: Path, target: Path) -> None:
        """Rename a fully fsynced scratch tree to `target` and make the rename durable."""
        try:
            os.rename(source, target)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise ModelAlreadyExists(f"Checkpoint entry {target} already exists",
                                         uid=target.name) from exc
            raise
        _fsync_path(target.parent, directory=True)

    def _fsync_tree(self, root: Path) -> None:
        for parent, dirNames, fileNames in os.walk(root, topdown=False):
            for name in fileNames:
                path = Path(parent) / name
                if not path.is_symlink():
                    _fsync_path(path)
            for name in dirNames:
                path = Path(parent) / name
                if not path.is_symlink():
                    _fsync_path(path, directory=True)
        _fsync_path(root, directory=True)

    def _current_store(self, modelDir: Path) -> Path | None:
        link = modelDir / CURRENT_LINK_NAME
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        store = modelDir / target
        if not store.is_dir():
            raise CheckpointCorruptError(f"{link} points to missing store {target!r}")
        return store

    # -- model entries ---------------------------------------------------------------------

    def define(self, modelID: str, definition: dict[str, Any], *,
               background: bool = False) -> None:
        """Create the entry of a new model with its definition (a JSON-able dict).

        Raises ModelAlreadyExists if the model id already has an entry. With `background`
        the entry is written, made durable and renamed into place by a worker thread (its
        fsyncs overlap the caller's work); any later call about the model, and settle(),
        wait for it first (settle() raises its error)."""
        modelDir = self._model_dir(modelID)
        if modelDir.exists():
            raise ModelAlreadyExists(f"Model {modelID!r} already has a checkpoint entry",
                                     uid=modelID)
        try:
            definitionBytes = json.dumps(definition, sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"model definition of {modelID!r} is not JSON-able: {exc}"
                                    ) from exc
        if not background:
            self._write_entry(modelID, modelDir, definitionBytes)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="checkpoint-define")
        self._defining[modelID] = self._executor.submit(self._write_entry, modelID, modelDir,
                                                        definitionBytes)

    def _write_entry(self, modelID: str, modelDir: Path, definitionBytes: bytes) -> None:
        """Build a new model's entry in scratch, fsync it, rename it to `modelDir`."""
        with self._scratch_path(modelID[:40]) as entry:
            entry.mkdir()
            # each file and the entry are fsynced once, then the rename and its parent
            _write_durably(entry / VERSION_FILE_NAME, ENTRY_VERSION.encode())
            _write_durably(entry / DEFINITION_FILE_NAME, definitionBytes)
            _fsync_path(entry, directory=True)
            self._rename_into_place(entry, modelDir)
        _log.info("Defined checkpoint entry for model=%s", modelID)

    def loadModelDefinition(self, modelID: str) -> dict[str, Any]:
        """The definition given to define(); ModelNotFound if the model has no entry."""
        modelDir = self._existing_model_dir(modelID)
        try:
            return _json_object((modelDir / DEFINITION_FILE_NAME).read_bytes())
        except FileNotFoundError as exc:
            raise ModelNotFound(f"Model {modelID!r} has no checkpoint entry") from exc
        except ValueError as exc:
            raise CheckpointCorruptError(f"Definition of model {modelID!r} is corrupt: {exc}"
                                         ) from exc

    def hasModel(self, modelID: str) -> bool:
        """True if the model has an entry (it was defined and not removed)."""
        return (self._model_dir(modelID) / DEFINITION_FILE_NAME).is_file()

    def getModelIDs(self) -> list[str]:
        """Ids of every model with an entry, sorted."""
        self.settle()
        if not self._root.is_dir():
            return []
        return sorted(entry.name for entry in self._root.iterdir()
                      if not entry.name.startswith(".") and entry.is_dir()
                      and (entry / DEFINITION_FILE_NAME).is_file())

    def remove(self, modelID: str) -> None:
        """Remove the model's entry; ModelNotFound if it has none."""
        modelDir = self._existing_model_dir(modelID)
        with self._scratch_dir(modelID) as scratch:
            try:
                os.rename(modelDir, scratch / "removed")
            except FileNotFoundError as exc:
                raise ModelNotFound(f"Model {modelID!r} has no checkpoint entry") from exc
            _fsync_path(self._root, directory=True)
        _log.info("Removed checkpoint entry of model=%s", modelID)

    def clone(self, modelID: str, destModelID: str, modelState: bytes | None = None) -> None:
        """Create `destModelID` with the definition and checkpoint of `modelID`.

        `modelState`, if given, is used instead of the source's saved state (the source's
        runner passes its in-memory model so the clone is not behind it). Of the attributes
        only those describing the state (CLONED_ATTRIBUTES) are copied; batch ids are not
        (the destination has its own input queue). Raises ModelNotFound for a missing
        source and ModelAlreadyExists for an existing destination."""
        sourceDir = self._existing_model_dir(modelID)
        destDir = self._model_dir(destModelID)
        if destDir.exists():
            raise ModelAlreadyExists(f"Clone destination {destModelID!r} already exists",
                                     uid=destModelID)
        definition = (sourceDir / DEFINITION_FILE_NAME).read_bytes()
        carried: dict[str, Any] = {}
        sourceStore = None
        if modelState is None:
            sourceStore = self._current_store(sourceDir)
            if sourceStore is not None:
                sourceAttributes = self._read_attributes(sourceStore)
                carried = {key: sourceAttributes[key] for key in CLONED_ATTRIBUTES
                           if key in sourceAttributes}
        with self._scratch_dir(destModelID) as scratch:
            entry = scratch / destModelID
            entry.mkdir()
            _write_durably(entry / VERSION_FILE_NAME, ENTRY_VERSION.encode())
            _write_durably(entry / DEFINITION_FILE_NAME, definition)
            if modelState is not None or sourceStore is not None:
                # the source's saved bytes are hard-linked (a saved model.bin is never
                # changed, only replaced): many clones of one model cost no copies
                storeName = self._write_store(entry, 1, modelState, carried,
                                              reuseModelFrom=sourceStore)
                os.symlink(storeName, entry / CURRENT_LINK_NAME)
            self._fsync_tree(entry)
            self._rename_into_place(entry, destDir)
        _log.info("Cloned model=%s to model=%s", modelID, destModelID)

    # -- checkpoints -----------------------------------------------------------------------

    def _write_store(self, parent: Path, generation: int, modelState: bytes | None,
                     attributes: dict[str, Any], reuseModelFrom: Path | None = None,
                     store: Path | None = None) -> str:
        """Write and fsync a store directory (`parent`/its name, or `store` if given);
        returns the store's name."""
        name = f"{STORE_PREFIX}{generation}_{uuid.uuid4().hex[:8]}"
        store = store if store is not None else parent / name
        store.mkdir()
        if modelState is not None:
            # empty state (a new model's first checkpoints: it is rebuilt from its
            # definition) is no file at all, and so one fsync less
            emptyModel = not modelState
            if not emptyModel:
                _write_durably(store / MODEL_FILE_NAME, modelState)
        else:
            assert reuseModelFrom is not None
            emptyModel = bool(self._read_attributes(reuseModelFrom).get(EMPTY_MODEL_KEY))
            if not emptyModel:
                os.link(reuseModelFrom / MODEL_FILE_NAME, store / MODEL_FILE_NAME)
        payload = {**attributes, "generation": generation, "savedAt": time.time()}
        if emptyModel:
            payload[EMPTY_MODEL_KEY] = True
        _write_durably(store / ATTRIBUTES_FILE_NAME, json.dumps(payload).encode())
        _fsync_path(store, directory=True)
        return name

    def save(self, modelID: str, modelState: bytes | None, attributes: dict[str, Any]) -> int:
        """Atomically replace the model's checkpoint; returns its generation number.

        `attributes` (JSON-able) are saved with the state and read back by
        loadCheckpointAttributes(). `modelState` None keeps the current model bytes (hard
        link) and replaces only the attributes: an incremental checkpoint. ModelNotFound if
        the model has no entry (or, for an incremental one, no checkpoint yet)."""
        if modelState is not None and not isinstance(modelState, bytes | bytearray):
            raise InvalidInputError(f"modelState must be bytes, got {type(modelState).__name__}")
        modelDir = self._existing_model_dir(modelID)
        oldStore = self._current_store(modelDir)
        if modelState is None and oldStore is None:
            raise ModelNotFound(f"Model {modelID!r} has no checkpoint to update incrementally")
        generation = 1
        if oldStore is not None:
            generation = int(self._read_attributes(oldStore).get("generation", 0)) + 1
        with self._scratch_path("store") as scratchStore, \
                self._scratch_path(CURRENT_LINK_NAME) as scratchLink:
            storeName = self._write_store(
                self._scratch, generation, None if modelState is None else bytes(modelState),
                attributes, reuseModelFrom=oldStore, store=scratchStore)
            # 1. the new store joins the model directory (not yet current)
            os.rename(scratchStore, modelDir / storeName)
            # 2. a new link, made in scratch, atomically replaces `current`
            os.symlink(storeName, scratchLink)
            os.rename(scratchLink, modelDir / CURRENT_LINK_NAME)
            _fsync_path(modelDir, directory=True)
        # 3. only now is anything else (the previous store, orphans of crashes) deleted
        for entry in modelDir.iterdir():
            if entry.name.startswith(STORE_PREFIX) and entry.name != storeName:
                shutil.rmtree(entry, ignore_errors=True)
        return generation

    @staticmethod
    def _read_attributes(store: Path) -> dict[str, Any]:
        try:
            return _json_object((store / ATTRIBUTES_FILE_NAME).read_bytes())
        except (OSError, ValueError) as exc:
            raise CheckpointCorruptError(f"Checkpoint attributes in {store} unreadable: {exc}"
                                         ) from exc

    def loadCheckpoint(self, modelID: str) -> Checkpoint | None:
        """The current checkpoint, or None if the model was defined but never saved.

        ModelNotFound if the model has no entry."""
        store = self._current_store(self._existing_model_dir(modelID))
        if store is None:
            return None
        attributes = self._read_attributes(store)
        try:
            modelState = (b"" if attributes.get(EMPTY_MODEL_KEY)
                          else (store / MODEL_FILE_NAME).read_bytes())
        except OSError as exc:
            raise CheckpointCorruptError(f"Model state in {store} unreadable: {exc}") from exc
        return Checkpoint(int(attributes.get("generation", 0)), modelState, attributes)

    def load(self, modelID: str) -> bytes:
        """The saved model state; ModelNotFound if the model has no entry or no checkpoint."""
        checkpoint = self.loadCheckpoint(modelID)
        if checkpoint is None:
            raise ModelNotFound(f"Model {modelID!r} has no checkpoint yet")
        return checkpoint.modelState

    def loadCheckpointAttributes(self, modelID: str) -> dict[str, Any]:
        """Attributes saved with the current checkpoint ({} if never saved); ModelNotFound
        if the model has no entry."""
        store = self._current_store(self._existing_model_dir(modelID))
        return {} if store is None else self._read_attributes(store)

    @classmethod
    def removeAll(cls, root: str | os.PathLike[str] | None = None) -> None:
        """Delete the whole archive (tests and tear-down scripts)."""
        path = Path(root) if root is not None else checkpoint_root()
        shutil.rmtree(path, ignore_errors=True)
