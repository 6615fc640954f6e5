"""A model-runner slot: a long-lived worker process that runs one model at a time for the
scheduler (so imports and numba-compiled code stay warm across models).

Protocol on the duplex pipe (scheduler -> worker): ``("run", modelID)``, ``("stop",)`` (stop
the current run after the batch in progress: checkpoint, ack, report), ``("exit",)``.
Worker -> scheduler: ``("ready", slot, pid)`` once (after warming up the model code), then
per run ``("started", modelID)`` and ``("done", modelID, outcome, detail)`` with outcome a RunOutcome value, ``"locked"`` (another
process holds the model) or ``"error"`` (detail = error text).

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
from collections import OrderedDict
from multiprocessing.connection import Connection
from typing import Any

from htmengine import engine_metrics

_log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
LOCK_TIMEOUT_SECONDS = 30.0
# Models kept in memory per slot after their run (reused if their checkpoint is unchanged
# when they come back to this slot; the scheduler prefers the slot that last ran a model).
# An HTM model takes ~20 MB after 1000 rows, more as its temporal memory grows.
MODEL_CACHE_SIZE = 4


def dieWithParent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        _log.warning("prctl(PR_SET_PDEATHSIG) unavailable; relying on parent checks")


class _SlotWorker:
    """The worker's state and command loop."""

    def __init__(self, slot: int, conn: Connection, parentPid: int) -> None:
        self._slot = slot
        self._conn = conn
        self._parentPid = parentPid
        self._stop = False      # stop the current run
        self._exit = False      # leave after the current run
        self._swapper: Any = None
        self._checkpointMgr: Any = None
        self._modelCache: OrderedDict[str, Any] = OrderedDict()

    def _onSigterm(self, _signum: int, _frame: Any) -> None:
        self._stop = True
        self._exit = True

    def _parentGone(self) -> bool:
        return os.getppid() != self._parentPid

    def _pollControl(self) -> None:
        """Read stop/exit requests that arrived while a model runs."""
        while self._conn.poll():
            message = self._conn.recv()
            if message[0] == "stop":
                self._stop = True
            elif message[0] == "exit":
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
        from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
        from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
        if self._swapper is None:
            self._swapper = ModelSwapperInterface()
        if self._checkpointMgr is None:
            self._checkpointMgr = ModelCheckpointMgr()

    def _runModel(self, modelID: str) -> tuple[str, str]:
        from htmengine.model_swapper.model_runner import ModelRunner, modelLock
        self._ensureServices()
        with modelLock(self._checkpointMgr.root, modelID, LOCK_TIMEOUT_SECONDS) as locked:
            if not locked:
                return "locked", f"model {modelID} is locked by another process"
            runner = ModelRunner(modelID, self._swapper, self._checkpointMgr,
                                 stopRequested=self._stopRequested,
                                 cachedModel=self._modelCache.pop(modelID, None))
            stats = runner.run()
            engine_metrics.CHECKPOINTS.inc(stats.checkpoints)
            if stats.modelLoadSeconds and not stats.extra.get("cacheHit"):
                engine_metrics.MODEL_LOADS.inc()
            cacheable = runner.cacheableModel()
            if cacheable is not None:
                self._modelCache[modelID] = cacheable
                while len(self._modelCache) > MODEL_CACHE_SIZE:
                    self._modelCache.popitem(last=False)
                    engine_metrics.MODEL_EVICTIONS.inc()
            return stats.outcome.value, (f"batches={stats.batches} requests={stats.requests} "
                                         f"duplicates={stats.duplicateBatches} "
                                         f"duplicateRows={stats.duplicateRows} "
                                         f"checkpoints={stats.checkpoints} "
                                         f"load={stats.modelLoadSeconds:.3f}s "
                                         f"cached={bool(stats.extra.get('cacheHit'))} "
                                         f"seconds={stats.seconds:.3f}")

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
        self._conn.send(("ready", self._slot, os.getpid()))
        while not self._exit:
            if not self._conn.poll(0.5):
                if self._parentGone():
                    break
                continue
            try:
                message = self._conn.recv()
            except EOFError:
                break
            if message[0] == "exit":
                break
            if message[0] == "stop":
                continue  # the run it was meant for has already ended
            if message[0] != "run":
                _log.error("slot %d: unexpected message %r", self._slot, message)
                continue
            modelID = message[1]
            self._stop = False
            self._conn.send(("started", modelID))
            try:
                outcome, detail = self._runModel(modelID)
            except Exception as exc:  # report, drop the (maybe broken) connection, go on
                _log.exception("slot %d: running model %s failed", self._slot, modelID)
                outcome, detail = "error", repr(exc)
                self._dropConnection()
            try:
                self._conn.send(("done", modelID, outcome, detail))
            except (BrokenPipeError, OSError):
                break
        self._dropConnection()


def warmUp(slot: int) -> None:
    """Import the model code and run a throw-away model for two records, so numba kernels
    are compiled (or loaded from cache) before the first real model arrives."""
    from htmengine.model_swapper.model_runner import MODEL_FACTORY_ENV
    if os.environ.get(MODEL_FACTORY_ENV):
        return
    try:
        from datetime import datetime

        from htmengine.algorithms.model import HtmAnomalyModel
        model = HtmAnomalyModel.from_range(0.0, 1.0)
        model.run(datetime(2000, 1, 1), 0.5)
        HtmAnomalyModel.from_bytes(model.to_bytes()).run(datetime(2000, 1, 1, 0, 5), 0.25)
    except Exception:  # a broken model is reported per row; the slot still serves commands
        _log.warning("slot %d: warming up the model code failed", slot, exc_info=True)


def workerMain(slot: int, conn: Connection, parentPid: int, logLevel: int) -> None:
    """Entry point of a slot process (multiprocessing 'spawn' target)."""
    dieWithParent()
    if os.getppid() != parentPid:
        sys.exit(0)
    logging.basicConfig(
        level=logLevel, stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s [slot {slot} pid %(process)d] %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)   # not every connection open/close
    warmUp(slot)
    _SlotWorker(slot, conn, parentPid).serve()
