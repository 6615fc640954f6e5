"""A model-runner slot: a long-lived worker process that runs one model at a time for the scheduler
(so imports and numba-compiled code stay warm across models) and keeps the models it owns resident
between runs, within its share of the memory budget (resident_models): those whose next input is
expected furthest in the future, weighed by their size (from the times the slot ran them for new
input), are dropped — without a checkpoint while their rows since the checkpoint are replayable
from the stored rows and few (ModelRunner.replayableWithoutCheckpoint), else checkpointed first.
While idle it checkpoints resident models the checkpoint policy says are due, and models dropped
with rows outside their checkpoint for longer than the policy's age limit; before exiting it
checkpoints as many dirty resident ones as it can in EXIT_CHECKPOINT_SECONDS (the rest are replayed
from the stored rows when next loaded).

The pipe to the scheduler carries the typed messages of slot_messages.

The worker dies with the scheduler (PR_SET_PDEATHSIG = SIGKILL, plus a parent check between
batches), and holds an exclusive per-model file lock while running a model, so two runners
never work on one model even across scheduler restarts.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import islice, takewhile
from multiprocessing.connection import Connection
from typing import Any

from htmengine import engine_metrics
from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.errors import ModelNotFound
from htmengine.model_swapper.model_runner import ModelRunner, RunOutcome
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.model_swapper.replay_source import MetricDataReplaySource
from htmengine.model_swapper.resident_models import ResidentModels
from htmengine.model_swapper.runner_support import (
    MODEL_FACTORY_ENV,
    TemplateModelFactory,
    defaultModelFactory,
    modelLock,
    warm_up_model_code,
)
from htmengine.model_swapper.settings import SwapperSettings
from htmengine.model_swapper.slot_messages import (
    ERROR,
    LOCKED,
    ExitSlot,
    RunDone,
    RunModel,
    RunStarted,
    SlotReady,
    StopRun,
)

_log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
LOCK_TIMEOUT_SECONDS = 30.0
EVICTION_LOCK_TIMEOUT_SECONDS = 5.0
# Idle housekeeping: how often resident models are checked for due checkpoints, and how many
# are checkpointed per check (so the slot stays responsive to the scheduler).
SWEEP_INTERVAL_SECONDS = 5.0
CHECKPOINTS_PER_SWEEP = 4
EXIT_CHECKPOINT_SECONDS = 8.0


def dieWithParent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        _log.warning("prctl(PR_SET_PDEATHSIG) unavailable; relying on parent checks")


class _SlotWorker:
    """The worker's state and command loop."""

    def __init__(self, slot: int, conn: Connection, parentPid: int,
                 budgetBytes: int, settings: SwapperSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._slot = slot
        self._settings = settings
        self._conn = conn
        self._parentPid = parentPid
        self._stop = False      # stop the current run
        self._exit = False      # leave after the current run
        self._swapper: Any = None
        self._checkpointMgr: Any = None
        self._replaySource: Any = None
        self._policy: Any = None
        self._factory: Any = None
        self._resident: ResidentModels[Any] = ResidentModels(budgetBytes)
        self._clock = clock     # arrivals, evictions and the idle sweep
        self._lastSweep = clock()
        # sizes of evicted models (ModelRunner.sizeRecord), so a model loaded again is not
        # measured again at once (measuring a model that just ran packs its whole state)
        self._sizeRecords: dict[str, tuple[int, int]] = {}
        self.evictions = 0      # cumulative counters, reported with every run
        self.loads = 0
        self.checkpoints = 0
        self.drops = 0          # evictions of models with rows after their checkpoint that
                                # wrote none (the rows are replayable)
        self.replayedRows = 0   # stored rows run again when a model was loaded
        # models dropped with rows after their checkpoint (replayable from the stored rows):
        # since when, oldest first; the idle sweep checkpoints those waiting longer than the
        # checkpoint policy's age limit, so stored rows are not relied on for long
        self._dropped: OrderedDict[str, float] = OrderedDict()
        # the last row each dropped model applied and published the result of: its next
        # runner replays rows up to there without publishing their results again
        self._publishedThrough: dict[str, int] = {}

    def _onSigterm(self, _signum: int, _frame: Any) -> None:
        self._stop = True
        self._exit = True

    def _parentGone(self) -> bool:
        return os.getppid() != self._parentPid

    def _pollControl(self) -> None:
        """Read stop/exit requests that arrived while a model runs."""
        while self._conn.poll():
            message = self._conn.recv()
            if isinstance(message, StopRun):
                self._stop = True
            elif isinstance(message, ExitSlot):
                self._stop = self._exit = True
            else:
                _log.error("slot %d: unexpected message while running: %r", self._slot,
                           message)

    def _stopRequested(self) -> bool:
        if self._parentGone():
            self._stop = self._exit = True
        else:
            self._pollControl()
        return self._stop

    def _ensureServices(self) -> None:
        if self._swapper is None:
            self._swapper = ModelSwapperInterface(settings=self._settings)
        if self._checkpointMgr is None:
            self._checkpointMgr = ModelCheckpointMgr()
        if self._factory is None:
            self._factory = TemplateModelFactory(defaultModelFactory())
        if self._policy is None:
            self._policy = self._settings.checkpoint_policy()
            if self._settings.replay_source == "metric_data":
                self._replaySource = MetricDataReplaySource()

    def _runModel(self, modelID: str) -> tuple[str, str]:
        self._ensureServices()
        with modelLock(self._checkpointMgr.root, modelID, LOCK_TIMEOUT_SECONDS) as locked:
            if not locked:
                return LOCKED, f"model {modelID} is locked by another process"
            runner = self._resident.get(modelID)
            if runner is not None and not runner.isCurrent():
                _log.warning("slot %d: resident model %s is stale (its checkpoint changed "
                             "elsewhere); loading it again", self._slot, modelID)
                self._resident.pop(modelID)
                runner = None
            if runner is None:
                runner = ModelRunner(modelID, self._swapper, self._checkpointMgr,
                                     stopRequested=self._stopRequested,
                                     modelFactory=self._factory,
                                     replaySource=self._replaySource,
                                     checkpointPolicy=self._policy,
                                     sizeRecord=self._sizeRecords.pop(modelID, None),
                                     publishedThrough=self._publishedThrough.pop(modelID,
                                                                                 None),
                                     settings=self._settings)
            else:
                runner.rebind(self._swapper, self._stopRequested)
            started = self._clock()
            try:
                stats = runner.run()
            except Exception:
                self._resident.pop(modelID)   # its state may be half-updated
                raise
            if stats.batches:                 # the run brought new input: an arrival
                self._resident.noteArrival(modelID, started)
            self.checkpoints += stats.checkpoints
            loaded = not stats.extra.get("resident") and runner.model is not None
            self.loads += loaded
            self.replayedRows += int(stats.extra.get("replayedRows", 0))
            engine_metrics.CHECKPOINTS.inc(stats.checkpoints)
            if loaded:
                engine_metrics.MODEL_LOADS.inc()
            if stats.outcome == RunOutcome.DELETED or not runner.dirty:
                self._dropped.pop(modelID, None)     # deleted, or its checkpoint is current
            if stats.outcome == RunOutcome.DELETED:
                self._publishedThrough.pop(modelID, None)
                self._resident.forget(modelID)
            elif runner.model is None:
                self._resident.pop(modelID)
            else:
                self._resident.put(modelID, runner, runner.residentBytes())
        evicted = self._evictOverBudget()
        return stats.outcome.value, (f"batches={stats.batches} requests={stats.requests} "
                                     f"duplicates={stats.duplicateBatches} "
                                     f"duplicateRows={stats.duplicateRows} "
                                     f"checkpoints={stats.checkpoints} "
                                     f"load={stats.modelLoadSeconds:.3f}s "
                                     f"resident={bool(stats.extra.get('resident'))} "
                                     f"replayed={stats.extra.get('replayedRows', 0)} "
                                     f"evicted={evicted} residentModels={len(self._resident)} "
                                     f"residentMB={self._resident.totalBytes / 2**20:.0f} "
                                     f"slotLoads={self.loads} "
                                     f"slotCheckpoints={self.checkpoints} "
                                     f"slotEvictions={self.evictions} "
                                     f"slotDrops={self.drops} "
                                     f"slotReplayedRows={self.replayedRows} "
                                     f"seconds={stats.seconds:.3f}")

    def _checkpointResident(self, modelID: str, runner: Any) -> bool:
        """Checkpoint a resident runner under its model lock; False if it did not save."""
        try:
            with modelLock(self._checkpointMgr.root, modelID,
                           EVICTION_LOCK_TIMEOUT_SECONDS) as locked:
                if not locked:
                    _log.warning("slot %d: model %s is locked elsewhere; not checkpointing "
                                 "it", self._slot, modelID)
                    return False
                saved = bool(runner.checkpointIfDirty())
                self.checkpoints += saved
                engine_metrics.CHECKPOINTS.inc(int(saved))
                return saved
        except Exception:  # its rows stay replayable from the stored rows
            _log.exception("slot %d: checkpointing resident model %s failed", self._slot,
                           modelID)
            return False

    def _evictOverBudget(self) -> int:
        """Drop the models whose next input is expected furthest in the future (x size)
        until the slot fits its budget; one whose rows since its checkpoint cannot all be replayed
        from the stored rows (or too many) is checkpointed first."""
        now = self._clock()
        evicted = self._resident.evictOverBudget(now=now)
        for modelID, runner in evicted:
            if runner.dirty and runner.replayableWithoutCheckpoint():
                self.drops += 1
                if runner.lastRowId is not None:
                    self._publishedThrough[modelID] = runner.lastRowId
            elif runner.dirty:
                self._checkpointResident(modelID, runner)
            if runner.dirty:
                self._dropped.setdefault(modelID, now)
            else:
                self._dropped.pop(modelID, None)
            record = runner.sizeRecord()
            if record is not None:
                self._sizeRecords[modelID] = record
            _log.debug("slot %d: evicted model %s", self._slot, modelID)
        self.evictions += len(evicted)
        engine_metrics.MODEL_EVICTIONS.inc(len(evicted))
        return len(evicted)

    def _sweep(self) -> None:
        """Idle housekeeping: checkpoint a few resident models whose checkpoint is due."""
        now = self._clock()
        if now - self._lastSweep < SWEEP_INTERVAL_SECONDS or self._checkpointMgr is None:
            return
        self._lastSweep = now
        saved = 0
        for modelID, runner in self._resident.items():
            if saved >= CHECKPOINTS_PER_SWEEP or self._conn.poll():
                break
            if runner.checkpointDue() and self._checkpointResident(modelID, runner):
                saved += 1
        # oldest first (a model tried in vain goes to the end, with the time of the try), at
        # most CHECKPOINTS_PER_SWEEP tries
        due = list(islice(takewhile(lambda item: now - item[1] >= self._policy.maxAgeSeconds,
                                    self._dropped.items()), CHECKPOINTS_PER_SWEEP - saved))
        for modelID, _since in due:
            if self._conn.poll():
                break
            del self._dropped[modelID]
            saved += self._checkpointDropped(modelID)

    def _checkpointDropped(self, modelID: str) -> bool:
        """Checkpoint a model dropped with rows after its checkpoint long ago: the resident
        runner if it was loaded again since, else a runner that loads it (replaying its
        stored rows) only for this checkpoint. False if nothing was saved."""
        runner = self._resident.peek(modelID)
        if runner is not None:
            saved = self._checkpointResident(modelID, runner)
            if not saved and runner.dirty:
                self._dropped[modelID] = self._clock()   # locked or failed: try again later
            return saved
        try:
            self._ensureServices()
            with modelLock(self._checkpointMgr.root, modelID,
                           EVICTION_LOCK_TIMEOUT_SECONDS) as locked:
                if not locked:
                    _log.warning("slot %d: dropped model %s is locked elsewhere; trying "
                                 "again later", self._slot, modelID)
                    self._dropped[modelID] = self._clock()
                    return False
                runner = ModelRunner(modelID, self._swapper, self._checkpointMgr,
                                     modelFactory=self._factory,
                                     replaySource=self._replaySource,
                                     checkpointPolicy=self._policy,
                                     publishedThrough=self._publishedThrough.pop(modelID,
                                                                                 None),
                                     settings=self._settings)
                saved = runner.checkpointStoredRows()
        except ModelNotFound:    # deleted meanwhile: nothing left to checkpoint
            _log.info("slot %d: dropped model %s no longer exists", self._slot, modelID)
            return False
        except Exception:  # broken for now: its rows stay in the store; try again later
            _log.exception("slot %d: checkpointing dropped model %s failed", self._slot,
                           modelID)
            self._dropped[modelID] = self._clock()
            return False
        self.checkpoints += saved
        engine_metrics.CHECKPOINTS.inc(int(saved))
        return saved

    def _checkpointBeforeExit(self) -> None:
        if self._checkpointMgr is None:
            return
        deadline = time.monotonic() + EXIT_CHECKPOINT_SECONDS
        dirty = [(m, r) for m, r in self._resident.items() if r.dirty]
        saved = 0
        for modelID, runner in dirty:
            if time.monotonic() >= deadline:
                break
            saved += self._checkpointResident(modelID, runner)
        if dirty:
            _log.info("slot %d: checkpointed %d of %d resident models with uncheckpointed "
                      "rows before exiting (the rest replay their stored rows when loaded)",
                      self._slot, saved, len(dirty))

    def _dropConnection(self) -> None:
        swapper, self._swapper = self._swapper, None
        if swapper is not None:
            try:
                swapper.close()
            except Exception:  # the connection is already broken
                _log.debug("ignoring error closing a broken swapper", exc_info=True)

    def serve(self) -> None:
        """Command loop: run models until told to exit or the parent goes away."""
        signal.signal(signal.SIGTERM, self._onSigterm)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler coordinates shutdown
        self._conn.send(SlotReady(self._slot, os.getpid()))
        while not self._exit:
            if not self._conn.poll(0.5):
                if self._parentGone():
                    break
                self._sweep()
                continue
            try:
                message = self._conn.recv()
            except EOFError:
                break
            if isinstance(message, ExitSlot):
                break
            if isinstance(message, StopRun):
                continue  # the run it was meant for has already ended
            if not isinstance(message, RunModel):
                _log.error("slot %d: unexpected message %r", self._slot, message)
                continue
            modelID = message.model_id
            self._stop = False
            self._conn.send(RunStarted(modelID))
            try:
                outcome, detail = self._runModel(modelID)
            except Exception as exc:  # report, drop the (maybe broken) connection, go on
                _log.exception("slot %d: running model %s failed", self._slot, modelID)
                outcome, detail = ERROR, repr(exc)
                self._dropConnection()
            try:
                self._conn.send(RunDone(modelID, outcome, detail))
            except (BrokenPipeError, OSError):
                break
        if not self._parentGone():
            self._checkpointBeforeExit()
        self._dropConnection()


def warmUp(slot: int) -> None:
    """Import the model code and run a throw-away model for two records, so numba kernels
    are compiled (or loaded from cache) before the first real model arrives."""
    if os.environ.get(MODEL_FACTORY_ENV):
        return
    try:
        warm_up_model_code()
    except Exception:  # a broken model is reported per row; the slot still serves commands
        _log.warning("slot %d: warming up the model code failed", slot, exc_info=True)


def workerMain(slot: int, conn: Connection, parentPid: int, logLevel: int,
               budgetBytes: int, settings: SwapperSettings | None = None) -> None:
    """Entry point of a slot process: the 'spawn' target, or called by the scheduler's
    forkedSlotMain in a slot forked from the scheduler."""
    dieWithParent()
    if os.getppid() != parentPid:
        sys.exit(0)
    logging.basicConfig(
        level=logLevel, stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [slot {slot} pid %(process)d] %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)   # outages: nta_utils.outage
    warmUp(slot)
    _SlotWorker(slot, conn, parentPid, budgetBytes,
                settings if settings is not None else SwapperSettings.from_config()).serve()
