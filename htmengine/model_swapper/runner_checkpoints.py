"""The part of ModelRunner (model_runner) that keeps its model's checkpoint and acks what it
took: the runner's state, saving checkpoints (full, or incremental as rows to replay) with the
batch ids they contain, acking taken batches after their results are published (and, unless
the rows are replayable, after the checkpoint), and the questions a slot asks of a resident
runner (still current? dirty? checkpoint due? how large?). ModelRunner adds the input loop
and the processing of requests on top of it; the guarantees are in model_runner's docstring.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from htmengine.model_swapper.checkpoint_policy import CheckpointPolicy
from htmengine.model_swapper.checkpoint_store import CheckpointStore
from htmengine.model_swapper.errors import InvalidSwapperSettingError, ModelNotFound
from htmengine.model_swapper.messages import ResultItem
from htmengine.model_swapper.model_swapper_interface import (
    ConsumedRequestBatch,
    ModelSwapperInterface,
)
from htmengine.model_swapper.replay_source import ReplaySource
from htmengine.model_swapper.runner_support import (
    FROM_DEFINITION_KEY,
    AnomalyModel,
    AnomalyModelFactory,
    InputRowDecoder,
)
from htmengine.model_swapper.settings import SwapperSettings
from nta_utils.errors import BusError

_log = logging.getLogger("htmengine.model_swapper.model_runner")

# At most this many rows since the last full checkpoint are saved as rows to replay (an
# incremental checkpoint) instead of re-serializing the whole model (as the original did).
# Every load of the model runs them again, so the bound trades a serialization (~10-20 model
# steps of CPU) against the replay on each load: a model evicted and reloaded for each
# sample (many more models than the memory budget holds) pays on average half of it per
# load, which makes a small bound cheapest; resident models rarely checkpoint at all. The
# same bound limits the rows an evicted lazy model may leave to be replayed from the stored
# rows instead of being checkpointed (replayableWithoutCheckpoint): a replayed row costs
# ~0.4 ms of CPU, a full checkpoint ~8 ms plus its writes.
MAX_INCREMENTAL_CHECKPOINT_ROWS = 8
# A resident model's size (state_nbytes) is measured again after this many applied rows.
RESIDENT_BYTES_MEASURE_ROWS = 16


class RunOutcome(Enum):
    """Why ModelRunner.run() returned."""

    DRAINED = "drained"        # input queue empty, everything checkpointed and acked
    STOPPED = "stopped"        # asked to stop (preempted / shutdown); more input may remain
    DELETED = "deleted"        # the model was deleted by a deleteModel command
    NO_QUEUE = "no_queue"      # the model's input queue does not exist


@dataclass
class RunStats:
    """Counters of one ModelRunner.run()."""

    outcome: RunOutcome = RunOutcome.DRAINED
    batches: int = 0
    requests: int = 0
    duplicateBatches: int = 0
    duplicateRows: int = 0
    checkpoints: int = 0
    modelLoadSeconds: float = 0.0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class CheckpointingRunner:
    """A model runner's state, checkpoints, acks and residency (see the module docstring)."""

    def __init__(self, modelID: str, swapper: ModelSwapperInterface,
                 checkpointMgr: CheckpointStore, *,
                 targetRequestsPerCheckpoint: int | None = None,
                 stopRequested: Callable[[], bool] = lambda: False,
                 modelFactory: AnomalyModelFactory | None = None,
                 replaySource: ReplaySource | None = None,
                 checkpointPolicy: CheckpointPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sizeRecord: tuple[int, int] | None = None,
                 publishedThrough: int | None = None,
                 settings: SwapperSettings | None = None) -> None:
        self._modelID = modelID
        self._swapper = swapper
        self._checkpointMgr = checkpointMgr
        if targetRequestsPerCheckpoint is None:
            settings = settings if settings is not None else SwapperSettings.from_config()
            targetRequestsPerCheckpoint = settings.target_requests_per_checkpoint
        if targetRequestsPerCheckpoint < 1:
            raise InvalidSwapperSettingError(f"targetRequestsPerCheckpoint must be >= 1, got "
                                             f"{targetRequestsPerCheckpoint}")
        self._target = targetRequestsPerCheckpoint
        self._stopRequested = stopRequested
        self._modelFactory = modelFactory
        self._model: AnomalyModel | None = None
        self._rowDecoder: InputRowDecoder | None = None
        self._modelDirty = False
        self._deleted = False
        self._replaySource = replaySource
        self._policy = checkpointPolicy or CheckpointPolicy()
        self._clock = clock
        self._baseRowId: int | None = None      # lastRowId of the current checkpoint
        # the checkpoint's base state is a new model made from the definition (no bytes)
        self._fromDefinition = False
        # the checkpoint has model bytes to build on (e.g. a clone's, without a checkpointId)
        self._storedBase = False
        self._uncheckpointedRows = 0
        self._dirtySince: float | None = None
        # the current checkpoint: its id, and the rows to replay on top of its model bytes
        self._checkpointId: str | None = None
        self._replayRows: list[list[Any]] = []
        self._runRows: list[list[Any]] = []     # rows applied since the last checkpoint
        self._forceFullCheckpoint = False
        self._lastRowId: int | None = None      # highest integer rowID applied
        # batch ids inside the last checkpoint (its run and the run before it)
        self._checkpointBatchIds: set[str] = set()
        self._lastCheckpointRunIds: list[str] = []
        # this run (since the last checkpoint)
        self._runBatchIds: list[str] = []
        self._runRequests = 0
        self._lastUnacked: ConsumedRequestBatch | None = None
        self._pendingResults: list[ResultItem] = []
        self._lastPendingRowId: int | None = None
        # the definition this runner's defineModel wrote (in the background), until saved
        self._definedInRun: dict[str, Any] | None = None
        self.stats = RunStats()
        # the model's size and the rows applied since it was measured; `sizeRecord` carries
        # them over from an earlier runner of the model (evicted, now loaded again)
        self._residentBytes: int | None = None
        self._measuredModel: AnomalyModel | None = None
        self._rowsSinceMeasured = 0
        self._sizeRecord = sizeRecord
        # the rows up to this rowid had their results published by an earlier runner of the
        # model (dropped without a checkpoint): replaying them publishes nothing again
        self._publishedThrough = publishedThrough

    def __repr__(self) -> str:
        return f"{type(self).__name__}<modelID={self._modelID}>"

    @property
    def model(self) -> AnomalyModel | None:
        """The model object once loaded (None before the first input row)."""
        return self._model

    # -- residency (the slot keeps the runner between runs) --------------------------------

    def isCurrent(self) -> bool:
        """True if this runner's model may be run again: it is loaded and the model's current
        checkpoint is still the one this runner wrote or loaded (nobody else ran it since)."""
        if self._model is None or self._deleted:
            return False
        try:
            attributes = self._checkpointMgr.loadCheckpointAttributes(self._modelID)
        except ModelNotFound:
            return False
        return attributes.get("checkpointId") == self._checkpointId

    def rebind(self, swapper: ModelSwapperInterface, stopRequested: Callable[[], bool]) -> None:
        """Use this connection and stop check for the next run (a resident runner outlives
        the slot's broker connection after an error)."""
        self._swapper = swapper
        self._stopRequested = stopRequested

    @property
    def dirty(self) -> bool:
        """True if the model has applied rows that are not in its checkpoint."""
        return self._modelDirty and self._model is not None and not self._deleted

    def checkpointDue(self) -> bool:
        """True if the checkpoint policy asks for a checkpoint now."""
        return self.dirty and self._policy.due(self._uncheckpointedRows, self._dirtySince,
                                               self._clock())

    @property
    def lastRowId(self) -> int | None:
        """The highest integer rowID applied (None before any)."""
        return self._lastRowId

    def replayableWithoutCheckpoint(self) -> bool:
        """True if the model may be dropped without a checkpoint: every row it applied since
        its checkpoint is in the replay source (lazy mode; every taken batch acked, its
        results published), and a load replays at most MAX_INCREMENTAL_CHECKPOINT_ROWS rows
        (the checkpoint's replay rows and those stored after it). The next load replays
        them, as after a crash; a model with more is checkpointed before it is dropped."""
        return (self._model is not None and self._lazy() and self._lastUnacked is None
                and not self._pendingResults
                and (len(self._replayRows) + self._uncheckpointedRows
                     <= MAX_INCREMENTAL_CHECKPOINT_ROWS))

    def checkpointIfDirty(self) -> bool:
        """Checkpoint the model if it has uncheckpointed rows (before eviction or exit, when
        every taken batch is acked already); returns True if it saved one."""
        if not self.dirty or self._lastUnacked is not None:
            return False
        self._checkpoint()
        return True

    def residentBytes(self) -> int:
        """Bytes the model holds at rest (its state_nbytes(); the size of its saved bytes
        for models without it); 0 before it is loaded. Measured again only after
        RESIDENT_BYTES_MEASURE_ROWS applied rows: a model that just ran packs its whole state
        to measure it, and its size grows slowly."""
        if self._model is None:
            return 0
        if self._residentBytes is None and self._sizeRecord is not None:
            self._residentBytes, rowsBefore = self._sizeRecord
            self._rowsSinceMeasured += rowsBefore
            self._measuredModel = self._model
            self._sizeRecord = None
        if (self._residentBytes is None or self._model is not self._measuredModel
                or self._rowsSinceMeasured >= RESIDENT_BYTES_MEASURE_ROWS):
            measure = getattr(self._model, "state_nbytes", None)
            self._residentBytes = (int(measure()) if callable(measure)
                                   else len(self._model.to_bytes()))
            self._measuredModel = self._model
            self._rowsSinceMeasured = 0
        return self._residentBytes

    def sizeRecord(self) -> tuple[int, int] | None:
        """(bytes, rows applied since they were measured) of the loaded model, for the next
        runner of the model after an eviction; None if it was never measured."""
        if self._residentBytes is None or self._model is not self._measuredModel:
            return self._sizeRecord
        return self._residentBytes, self._rowsSinceMeasured

    # -- checkpoints and acks -------------------------------------------------------------

    def _flushResults(self) -> None:
        """Publish the queued results (before anything they came from is acked)."""
        if self._pendingResults:
            self._swapper.submitResults(self._modelID, self._pendingResults)
        self._pendingResults = []
        self._lastPendingRowId = None

    def _lazy(self) -> bool:
        """True when taken batches may be acked before a checkpoint: the rows after the
        current checkpoint can be replayed from the replay source."""
        return (self._replaySource is not None and self._baseRowId is not None
                and not self._forceFullCheckpoint and not self._deleted)

    def _loadCheckpointBatchIds(self) -> None:
        try:
            attributes = self._checkpointMgr.loadCheckpointAttributes(self._modelID)
        except ModelNotFound:
            attributes = {}
        self._lastCheckpointRunIds = list(attributes.get("batchIds", []))
        self._checkpointBatchIds = (set(self._lastCheckpointRunIds)
                                    | set(attributes.get("previousBatchIds", [])))
        self._checkpointId = attributes.get("checkpointId")
        self._replayRows = list(attributes.get("replayRows", []))
        self._lastRowId = attributes.get("lastRowId")
        self._fromDefinition = bool(attributes.get(FROM_DEFINITION_KEY))
        self._baseRowId = self._lastRowId

    def _commit(self) -> None:
        """Checkpoint the model if it changed, then ack everything taken so far (lazy: only
        ack; the rows are replayable)."""
        if self._lazy():
            self._ack()
            return
        if self._modelDirty and self._model is not None and not self._deleted:
            self._checkpoint()
        else:
            # nothing durable changed (commands are idempotent); remember ids for this run
            self._checkpointBatchIds.update(self._runBatchIds)
        self._ack()
        self._runBatchIds = []
        self._runRequests = 0

    def _checkpoint(self) -> None:
        """Save the model's checkpoint with the batch ids and rows applied since the last."""
        assert self._model is not None
        self._flushResults()   # a row inside a checkpoint is never replayed: publish first
        previousRunIds = self._lastCheckpointRunIds
        replayRows = self._replayRows + self._runRows
        incremental = ((self._checkpointId is not None or self._fromDefinition
                        or self._storedBase)
                       and not self._forceFullCheckpoint
                       and len(replayRows) <= MAX_INCREMENTAL_CHECKPOINT_ROWS)
        if not incremental:
            replayRows = []
            self._fromDefinition = False
        if incremental and self._checkpointId is None and not self._storedBase:
            modelState: bytes | None = b""   # the first checkpoint of a new model
        else:
            modelState = None if incremental else self._model.to_bytes()
        self._storedBase = True
        checkpointId = uuid.uuid4().hex
        self._checkpointMgr.save(
            self._modelID, modelState, {
                "checkpointId": checkpointId,
                "batchIds": self._runBatchIds,
                "previousBatchIds": previousRunIds,
                "replayRows": replayRows,
                "lastRowId": self._lastRowId,
                FROM_DEFINITION_KEY: self._fromDefinition,
            })
        self._checkpointId = checkpointId
        self._replayRows = replayRows
        self._runRows = []
        self._forceFullCheckpoint = False
        self.stats.checkpoints += 1
        self._lastCheckpointRunIds = list(self._runBatchIds)
        self._checkpointBatchIds = set(self._runBatchIds) | set(previousRunIds)
        self._modelDirty = False
        self._baseRowId = self._lastRowId
        self._uncheckpointedRows = 0
        self._dirtySince = None
        self._runBatchIds = []
        self._runRequests = 0

    def _ack(self) -> None:
        self._flushResults()
        batch, self._lastUnacked = self._lastUnacked, None
        if batch is None:
            return
        self._checkpointMgr.settle(self._modelID)   # an acked define is durable
        if batch.connectionGeneration != self._swapper.bus.connection_generation:
            _log.warning("%r: connection was lost since batch %s was taken; the broker "
                         "redelivers it and its id is in the checkpoint", self, batch.batchID)
            return
        try:
            batch.ack(multiple=True)
        except BusError:
            if not self._deleted:
                _log.warning("%r: ack of batch %s failed; it will be redelivered and skipped",
                             self, batch.batchID, exc_info=True)
