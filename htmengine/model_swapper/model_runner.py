"""ModelRunner: runs one model over its input queue until the queue is empty or it is asked
to stop. A slot keeps the runner (with its model) resident between runs (resident_models).

Per request batch, in queue order: skip it if its batch id was already applied (in this run
or recorded in the checkpoint), else process its items (commands, input rows) and queue their
results. After >= target_requests_per_checkpoint requests, when the queue is empty,
and before stopping: publish the queued results (one message per run of consecutive rows,
at most RESULT_BATCH_ROWS), save the model's checkpoint (with the batch ids applied since the
previous one), and only then ack the batches (multiple). A crash anywhere redelivers the
unacked batches; those already inside the checkpoint are skipped, the rest are recomputed
from the checkpoint's state — so the model applies every row exactly once, and a result
message published before a crash may be published again with identical content.

With a `ReplaySource` (the engine's metric_data), once the model has a checkpoint that names
the last row in its state (``lastRowId``), checkpoints are lazy: each batch is acked as soon
as its results are published, and the model is checkpointed only as `CheckpointPolicy` says
(every N rows, by age, before eviction or exit). Loading such a model from its checkpoint
first replays the stored rows after ``lastRowId`` (publishing the results of those not scored
yet), so acked rows that were not in the checkpoint are applied again, exactly once; their
redelivered or re-sent input is then skipped by rowid. Before that first checkpoint, and after
a model error, the runner checkpoints before acking as above.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from htmengine.model_swapper.errors import (
    ERR,
    ERR_INVALID_ARG,
    ERR_MODEL_ALREADY_EXISTS,
    ERR_NO_SUCH_MODEL,
    ERR_ROW_FAILED,
    SUCCESS,
    ModelAlreadyExists,
    ModelNotFound,
    ModelRunnerError,
)
from htmengine.model_swapper.messages import (
    ModelCommand,
    ModelCommandResult,
    ModelInferenceResult,
    ModelInputRow,
    RequestItem,
    ResultItem,
    encodeDatetime,
)
from htmengine.model_swapper.runner_checkpoints import (
    MAX_INCREMENTAL_CHECKPOINT_ROWS,
    RESIDENT_BYTES_MEASURE_ROWS,
    CheckpointingRunner,
    RunOutcome,
    RunStats,
)
from htmengine.model_swapper.runner_support import (
    FROM_DEFINITION_KEY,
    MODEL_FACTORY_ENV,
    AnomalyModel,
    InputRowDecoder,
    defaultModelFactory,
    errorMessage,
    loadCheckpointedModel,
    modelLock,
)

__all__ = ["MAX_INCREMENTAL_CHECKPOINT_ROWS", "MODEL_FACTORY_ENV",
           "RESIDENT_BYTES_MEASURE_ROWS", "ModelRunner", "RunOutcome", "RunStats",
           "loadCheckpointedModel", "modelLock"]

_log = logging.getLogger(__name__)

# Results of consecutive rows of several batches go out in one message of at most this many
# rows (below the 240 rows from which the likelihood's refresh depends on batching): in lazy
# mode until the batches are acked, else until the checkpoint (a new model's definition
# result and its first rows: one message).
RESULT_BATCH_ROWS = 200
DEFINITION_KEYS = ("modelConfig", "inferenceArgs", "inputRecordSchema")


class ModelRunner(CheckpointingRunner):
    """Processes one model's input queue; see the module docstring for the guarantees (its
    state, checkpoints, acks and residency are CheckpointingRunner's)."""

    # -- main loop -------------------------------------------------------------------------

    def run(self) -> RunStats:
        """Process input until the queue is empty, a stop is requested, or the model is
        deleted; every processed batch is checkpointed and acked before returning."""
        started = time.monotonic()
        self.stats = RunStats()
        self._definedInRun = None
        if self._model is None:
            self._loadCheckpointBatchIds()
        else:
            self.stats.extra["resident"] = True
        try:
            self.stats.outcome = self._loop()
        finally:
            self.stats.seconds = time.monotonic() - started
            _log.debug("%r: %s after %d batches (%d requests, %d duplicate batches, "
                      "%d checkpoints) in %.3fs", self, self.stats.outcome.value,
                      self.stats.batches, self.stats.requests, self.stats.duplicateBatches,
                      self.stats.checkpoints, self.stats.seconds)
        return self.stats

    def _loop(self) -> RunOutcome:
        seenEmpty = False
        while True:
            if self._stopRequested():
                self._commit()
                return RunOutcome.STOPPED
            try:
                # the broker said the last get left the queue empty: asking again would
                # only cost a round trip (input published since comes with a notification)
                batch = None if seenEmpty else self._swapper.getRequestBatch(self._modelID)
            except ModelNotFound:
                self._commit()
                return RunOutcome.NO_QUEUE
            if batch is None:
                self._flushResults()
                if self._lastUnacked is None:
                    return RunOutcome.DRAINED
                # idle: checkpoint (unless lazy) and ack; input published from now on comes
                # with a scheduler notification, so there is no need to look once more
                self._commit()
                return RunOutcome.DRAINED
            self._lastUnacked = batch
            seenEmpty = batch.remaining == 0
            if batch.batchID in self._checkpointBatchIds or batch.batchID in self._runBatchIds:
                _log.warning("%r: batch %s was already applied; skipping the redelivery",
                             self, batch.batchID)
                self.stats.duplicateBatches += 1
                continue
            self._publish(self._processBatch(batch.objects))
            self._runBatchIds.append(batch.batchID)
            self._runRequests += len(batch.objects)
            self.stats.batches += 1
            self.stats.requests += len(batch.objects)
            if self._deleted:
                self._endDeletedModel()
                return RunOutcome.DELETED
            if self._lazy():
                if len(self._pendingResults) >= RESULT_BATCH_ROWS or self.checkpointDue():
                    self._ack()
                if self.checkpointDue():
                    self._checkpoint()
            else:
                # results wait for the checkpoint (published just before it, in one message
                # with those of the batches before) unless they fill a message
                if len(self._pendingResults) >= RESULT_BATCH_ROWS:
                    self._flushResults()
                if self._runRequests >= self._target:
                    self._commit()

    def _publish(self, results: list[ResultItem]) -> None:
        """Queue results for one result message per run of consecutive rows (lazy mode:
        across batches, up to RESULT_BATCH_ROWS, so a backlog costs few round trips)."""
        for result in results:
            if isinstance(result, ModelCommandResult) and any(
                    isinstance(r, ModelInferenceResult) for r in self._pendingResults):
                # the anomaly service applies a message's command results before its rows:
                # a command after rows starts a new message
                self._flushResults()
            if isinstance(result, ModelInferenceResult) and isinstance(result.rowID, int):
                last = self._lastPendingRowId
                if last is not None and result.rowID != last + 1:
                    self._flushResults()   # the anomaly service takes contiguous rowids
                self._lastPendingRowId = result.rowID
            self._pendingResults.append(result)

    # -- requests --------------------------------------------------------------------------

    def _processBatch(self, requests: tuple[RequestItem, ...]) -> list[ResultItem]:
        results: list[ResultItem] = []
        for request in requests:
            if isinstance(request, ModelCommand):
                results.append(self._processCommand(request))
                continue
            if self._model is None and self._replaySource is not None:
                # load first: replaying the stored rows may cover this row already
                try:
                    self._ensureModel()
                except Exception:  # reported as this row's error result just below
                    _log.debug("%r: loading failed", self, exc_info=True)
            if self._alreadyApplied(request):
                self.stats.duplicateRows += 1
            else:
                results.append(self._processInputRow(request))
        return results

    def _alreadyApplied(self, row: ModelInputRow) -> bool:
        """True for an integer rowID not above the last one applied (htmengine's rowids grow
        per metric): a resend under a new batch id, or a batch older than the checkpoint's
        batch-id memory. Such rows are skipped without a result."""
        rowID = row.rowID
        if isinstance(rowID, bool) or not isinstance(rowID, int):
            return False
        if self._lastRowId is not None and rowID <= self._lastRowId:
            _log.debug("%r: row %s was already applied (last applied row %s); skipped",
                       self, rowID, self._lastRowId)
            return True
        return False

    def _processCommand(self, command: ModelCommand) -> ModelCommandResult:
        _log.info("%r: processing %s (commandID=%s)", self, command.method, command.commandID)
        handlers = {"defineModel": self._defineModel, "deleteModel": self._deleteModel,
                    "cloneModel": self._cloneModel}
        try:
            handler = handlers.get(command.method)
            if handler is None:
                raise ModelRunnerError(ERR_INVALID_ARG,
                                       f"unknown command method {command.method!r}")
            handler(command)
            return ModelCommandResult(command.commandID, command.method, SUCCESS)
        except Exception as exc:  # every failure becomes an error result
            status = exc.status if isinstance(exc, ModelRunnerError) else ERR
            if status == ERR:
                _log.exception("%r: %s failed", self, command.method)
            else:
                _log.warning("%r: %s failed: %s", self, command.method, exc)
            return ModelCommandResult(
                command.commandID, command.method, int(status),
                errorMessage=errorMessage(
                    f"{command.method} (commandID={command.commandID}) failed on "
                    f"modelID={self._modelID}", exc))

    def _defineModel(self, command: ModelCommand) -> None:
        args = command.args or {}
        missing = [key for key in DEFINITION_KEYS if key not in args]
        if missing:
            raise ModelRunnerError(ERR_INVALID_ARG, f"defineModel args lack {missing}")
        # in the form the checkpoint store keeps it (keys sorted), so a model created now
        # is the same, header included, as one created later from the stored definition
        definition = json.loads(json.dumps({key: args[key] for key in DEFINITION_KEYS},
                                           sort_keys=True))
        try:
            # written and fsynced while the model is created and runs its first rows: the
            # first checkpoint, and any ack, wait for it (a define lost in a crash before
            # that is redelivered and applied again)
            self._checkpointMgr.define(self._modelID, definition, background=True)
            self._definedInRun = definition
        except ModelAlreadyExists:
            existing = self._checkpointMgr.loadModelDefinition(self._modelID)
            if existing != definition:
                raise ModelRunnerError(
                    ERR_MODEL_ALREADY_EXISTS,
                    f"model {self._modelID} already exists with a different definition"
                ) from None
            _log.info("%r: defineModel repeated with the same definition (redelivery?)", self)

    def _deleteModel(self, command: ModelCommand) -> None:
        try:
            self._checkpointMgr.remove(self._modelID)
        except ModelNotFound:
            _log.info("%r: deleteModel: no checkpoint entry (deleted already?)", self)
        self._model = None
        self._modelDirty = False
        self._deleted = True

    def _endDeletedModel(self) -> None:
        """After a deleteModel: publish its result, delete the input queue unless requests
        follow the command (a new definition sent after it, and that model's rows: they are
        kept for the next run, as a new model), then ack up to and including the command."""
        self._flushResults()
        if not self._swapper.cleanUpAfterModelDeletion(self._modelID):
            _log.info("%r: requests follow the deleteModel command; its input queue is kept "
                      "for them", self)
        self._ack()

    def _cloneModel(self, command: ModelCommand) -> None:
        destModelID = (command.args or {}).get("modelID")
        if not isinstance(destModelID, str) or not destModelID:
            raise ModelRunnerError(ERR_INVALID_ARG,
                                   f"cloneModel args.modelID must be a model id, got "
                                   f"{destModelID!r}")
        if self._model is None and self._replaySource is not None:
            # an evicted model may have stored rows after its checkpoint (it was dropped
            # without one, or its slot died): load it, which replays them
            self._ensureModel()
        # clone what this runner has applied, not the (possibly older) saved checkpoint. A
        # loaded model whose checkpoint is behind it or holds replay rows gets one full
        # checkpoint (lazy mode, or nothing uncheckpointed to lose a batch id of), so every
        # clone then links the saved bytes and has no rows to replay when it is first loaded
        if (self._model is not None and (self.dirty or self._replayRows)
                and (self._lazy() or not self.dirty)):
            self._forceFullCheckpoint = True
            self._checkpoint()
        state = self._model.to_bytes() if self._model is not None and self._modelDirty else None
        try:
            self._checkpointMgr.clone(self._modelID, destModelID, modelState=state)
        except ModelNotFound:
            raise ModelRunnerError(ERR_NO_SUCH_MODEL,
                                   f"clone source model {self._modelID} not found") from None
        except ModelAlreadyExists:
            _log.info("%r: clone destination %s exists already (redelivery?)", self,
                      destModelID)

    def _ensureModel(self) -> tuple[AnomalyModel, InputRowDecoder]:
        if self._model is None or self._rowDecoder is None:
            started = time.monotonic()
            try:
                if self._definedInRun is not None:
                    # defined by this run, never saved: a new model, without waiting for
                    # the definition to be durable
                    definition = self._definedInRun
                    self._model = self._newModel(definition)
                else:
                    definition = self._checkpointMgr.loadModelDefinition(self._modelID)
                    self._model = self._loadModel(definition)
            except ModelNotFound:
                raise ModelRunnerError(ERR_NO_SUCH_MODEL,
                                       f"model {self._modelID} is not defined") from None
            self._rowDecoder = InputRowDecoder(definition.get("inputRecordSchema"))
            self.stats.modelLoadSeconds += time.monotonic() - started
            try:
                self._replayStoredRows()
            except Exception:
                # the stored rows could not be read (nothing was applied): a model without
                # them must not go on, so the next attempt loads it again
                self._model = self._rowDecoder = None
                raise
        return self._model, self._rowDecoder

    def _replayStoredRows(self) -> None:
        """Apply the stored rows after the checkpoint's last row (acked before a crash, or
        stored but not yet received) and publish the results of those not scored yet."""
        if self._replaySource is None or self._baseRowId is None:
            return
        rows = self._replaySource.rowsAfter(self._modelID, self._baseRowId)
        for row in rows:
            if self._lastRowId is not None and row.rowID <= self._lastRowId:
                continue
            result = self._applyRow(row.rowID, row.timestamp, row.value)
            published = (self._publishedThrough is not None
                         and row.rowID <= self._publishedThrough)
            if not row.scored and not published:
                self._publish([result])
        if rows:
            self.stats.extra["replayedRows"] = len(rows)
            _log.info("%r: replayed %d stored rows after checkpoint row %s", self, len(rows),
                      self._baseRowId)

    def checkpointStoredRows(self) -> bool:
        """Load the model (its checkpoint, then the stored rows after it, publishing the
        results of those not scored yet) and checkpoint it if it applied any: for a model
        evicted without a checkpoint whose rows have waited long. True if it saved one."""
        self._loadCheckpointBatchIds()
        self._ensureModel()
        self._flushResults()
        if not self.dirty:
            return False
        self._checkpoint()
        return True

    def _newModel(self, definition: dict[str, Any]) -> AnomalyModel:
        """A new model from its definition (as loadCheckpointedModel makes one)."""
        factory = self._modelFactory or defaultModelFactory()
        self._fromDefinition = True
        return factory.create(definition["modelConfig"])

    def _loadModel(self, definition: dict[str, Any]) -> AnomalyModel:
        model, checkpoint = loadCheckpointedModel(self._checkpointMgr, self._modelID,
                                                  self._modelFactory, definition)
        if checkpoint is None:
            self._fromDefinition = True
        else:
            self._checkpointId = checkpoint.attributes.get("checkpointId")
            self._replayRows = list(checkpoint.attributes.get("replayRows", []))
            self._fromDefinition = bool(checkpoint.attributes.get(FROM_DEFINITION_KEY))
            self._storedBase = not self._fromDefinition
        return model

    def _processInputRow(self, row: ModelInputRow) -> ModelInferenceResult:
        try:
            _, decoder = self._ensureModel()
            timestamp, value = decoder.decode(row)
        except Exception as exc:  # every failure becomes an error result
            return self._errorResult(row.rowID, exc)
        return self._applyRow(row.rowID, timestamp, value)

    def _applyRow(self, rowID: Any, timestamp: Any, value: float) -> ModelInferenceResult:
        """Run one decoded row through the model; an error result if the model fails."""
        assert self._model is not None
        self._modelDirty = True
        if isinstance(rowID, int) and not isinstance(rowID, bool):
            self._lastRowId = rowID
        try:
            score = self._model.run(timestamp, value)
        except Exception as exc:
            # the state may be half-updated: replaying rows would not reproduce it
            self._forceFullCheckpoint = True
            _log.error("%r: the model failed on row %s; that row has no score, the model "
                       "goes on", self, rowID, exc_info=exc)
            rowError = ModelRunnerError(ERR_ROW_FAILED, repr(exc))
            rowError.__cause__ = exc
            return self._errorResult(rowID, rowError)
        self._runRows.append([encodeDatetime(timestamp), None if math.isnan(value) else value])
        self._uncheckpointedRows += 1
        self._rowsSinceMeasured += 1
        if self._dirtySince is None:
            self._dirtySince = self._clock()
        return ModelInferenceResult(rowID, SUCCESS, anomalyScore=float(score))

    def _errorResult(self, rowID: Any, exc: Exception) -> ModelInferenceResult:
        """Every failure becomes an error result naming the row and the model."""
        status = exc.status if isinstance(exc, ModelRunnerError) else ERR
        if status == ERR:
            _log.error("%r: inference failed for row %s", self, rowID, exc_info=exc)
        return ModelInferenceResult(
            rowID, int(status),
            errorMessage=errorMessage(
                f"Inference failed for rowID={rowID} of modelID={self._modelID}", exc))
