"""The model scheduler service: ``python -m htmengine.model_swapper.model_scheduler_service``.

Runs N slot processes (model-swapper.conf [model_scheduler] num_slots; 0 = the original's
max(min(cores - 1, (RAM - 1 GiB) / 2 GiB), 2)), consumes the scheduler notification queue,
and lets a SwapController decide which model runs where: each model is owned by one slot of
this scheduler (``ownerOf``), which keeps it resident within its share of
``[model_scheduler] memory_budget_mb`` (0 = half the machine's RAM). At start-up every model of the
checkpoint archive whose input queue is non-empty is scheduled, and notifications left unacked
by a previous (crashed) scheduler are redelivered, so a kill -9 loses no work.

Slot start-up: the scheduler loads the model code once (imports, numba kernels from their disk
cache, a throw-away model run) and forks its slots from that warm state before it opens any
connection or starts a thread, so N slots cost one start-up instead of N and are ready when the
first input arrives. A slot that dies later is started again with 'spawn' (the scheduler then
has a broker connection and threads that a fork would copy).

SIGINT/SIGTERM: stop scheduling, ask every running slot to stop (its runner checkpoints and
acks), wait for them, exit 0.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import psutil

from htmengine import engine_metrics
from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.model_swapper.runner_support import MODEL_FACTORY_ENV, warm_up_model_code
from htmengine.model_swapper.settings import SwapperSettings
from htmengine.model_swapper.slot_messages import (
    ERROR,
    LOCKED,
    ExitSlot,
    RunDone,
    RunModel,
    RunStarted,
    SchedulerMessage,
    SlotReady,
    StopRun,
)
from htmengine.model_swapper.slot_worker import workerMain
from htmengine.model_swapper.swap_controller import (
    AckNotifications,
    Action,
    StartModel,
    StopSlot,
    SwapController,
)
from nta_utils.errors import BusConnectionError, BusError, QueueNotFoundError

_log = logging.getLogger(__name__)

MIN_SLOTS = 2
BASE_RAM_BYTES = 1 << 30
RAM_PER_SLOT_BYTES = 2 << 30
# The scheduler's longest wait: once the notification consumer has nothing buffered (after
# DRAIN_SECONDS without a message) it waits for the broker's socket or a slot's pipe to turn
# readable, so a notification or a slot's "done" is handled at once; timers (retries, token
# refresh) are checked at least this often. Without a socket to wait on (an in-process bus)
# this bounds how long a notification waits.
POLL_SECONDS = 0.01
DRAIN_SECONDS = 0.001
MAX_FAILURE_RETRY_SECONDS = 60.0
LOCKED_RETRY_SECONDS = 1.0
SHUTDOWN_TIMEOUT_SECONDS = 120.0
# Held notification tokens older than this are swapped for fresh ones, well before the
# broker's consumer_timeout (30 min by default) would close the channel.
TOKEN_REFRESH_SECONDS = 600.0
# Drained runs are logged at DEBUG; every this many seconds the last run of each slot (with
# its cumulative loads, checkpoints and evictions) is logged at INFO ("last run, slot ...").
SLOT_SUMMARY_SECONDS = 10.0
# A running model is preempted for a waiting one only after running this long: a swap costs
# a checkpoint and a load (~0.1-0.5 s each for an HTM model), so shorter turns waste slots.
DEFAULT_MIN_RUN_SECONDS = 3.0
DEFAULT_BUDGET_FRACTION = 0.5


def defaultMemoryBudgetBytes(totalMemory: int | None = None) -> int:
    """Half the machine's RAM."""
    totalMemory = totalMemory if totalMemory is not None else psutil.virtual_memory().total
    return int(totalMemory * DEFAULT_BUDGET_FRACTION)


def configuredMemoryBudgetBytes(settings: SwapperSettings | None = None) -> int:
    """[model_scheduler] memory_budget_mb in bytes, 0 (or no option) meaning
    defaultMemoryBudgetBytes(); `settings` default to model-swapper.conf."""
    settings = settings if settings is not None else SwapperSettings.from_config()
    value = settings.memory_budget_mb
    return value * 2**20 if value else defaultMemoryBudgetBytes()


def defaultNumSlots(cpuCount: int | None = None, totalMemory: int | None = None) -> int:
    """The original's default: max(min(cores - 1, (RAM - 1 GiB) // 2 GiB), 2)."""
    cpuCount = cpuCount if cpuCount is not None else (os.cpu_count() or 1)
    totalMemory = totalMemory if totalMemory is not None else psutil.virtual_memory().total
    return max(min(cpuCount - 1, (totalMemory - BASE_RAM_BYTES) // RAM_PER_SLOT_BYTES),
               MIN_SLOTS)


def configuredNumSlots(settings: SwapperSettings | None = None) -> int:
    """[model_scheduler] num_slots, 0 meaning defaultNumSlots(); `settings` default to
    model-swapper.conf."""
    settings = settings if settings is not None else SwapperSettings.from_config()
    return settings.num_slots or defaultNumSlots()


@dataclass
class _Slot:
    index: int
    process: Any
    conn: Connection
    modelID: str | None = None
    ready: bool = False


class ModelSchedulerService:
    """Owns the slot processes, the notification consumer and the SwapController."""

    def __init__(self, numSlots: int,
                 minRunSeconds: float = DEFAULT_MIN_RUN_SECONDS,
                 memoryBudgetBytes: int | None = None,
                 settings: SwapperSettings | None = None) -> None:
        self._numSlots = numSlots
        self._settings = settings if settings is not None else SwapperSettings.from_config()
        budget = (memoryBudgetBytes if memoryBudgetBytes is not None
                  else configuredMemoryBudgetBytes(self._settings))
        self._slotBudgetBytes = budget // numSlots
        self.schedulerId = f"{socket.gethostname()}:{os.getpid()}"
        self._context = multiprocessing.get_context("spawn")
        self._forkContext = multiprocessing.get_context("fork")
        self._controller = SwapController(numSlots, minRunSeconds=minRunSeconds)
        self._slots: list[_Slot] = []
        self._stopSignalled = False
        self._swapper: ModelSwapperInterface | None = None
        self._lastTokenRefresh = time.monotonic()
        self._failures: dict[str, int] = {}
        self._lastRuns: dict[int, str] = {}     # slot -> its last "done" report, unlogged
        self._lastSummary = time.monotonic()

    # -- slots -----------------------------------------------------------------------------

    def _spawnSlot(self, index: int, fork: bool = False) -> _Slot:
        """Start slot `index`: forked from this process (only while it has no connection and
        no other thread) or spawned (a fresh interpreter)."""
        context: Any = self._forkContext if fork else self._context
        parentConn, childConn = context.Pipe(duplex=True)
        process = context.Process(
            target=forkedSlotMain if fork else workerMain, name=f"model-slot-{index}",
            args=(index, childConn, os.getpid(), logging.getLogger().getEffectiveLevel(),
                  self._slotBudgetBytes, self._settings))
        process.daemon = True
        process.start()
        childConn.close()
        return _Slot(index, process, parentConn)

    def _startSlots(self) -> None:
        """Start every slot: forked from this process once it has loaded the model code (one
        start-up for all slots), or spawned if it could not load it."""
        fork = preloadModelCode()
        self._slots = [self._spawnSlot(i, fork=fork) for i in range(self._numSlots)]

    def _send(self, slot: _Slot, message: SchedulerMessage) -> None:
        try:
            slot.conn.send(message)
        except (BrokenPipeError, OSError):
            _log.warning("slot %d: pipe broken while sending %r", slot.index, message)

    # -- actions ---------------------------------------------------------------------------

    def _apply(self, actions: list[Action]) -> None:
        assert self._swapper is not None
        for action in actions:
            if isinstance(action, StartModel):
                slot = self._slots[action.slot]
                slot.modelID = action.modelID
                _log.debug("start model=%s in slot %d of scheduler %s", action.modelID,
                           action.slot, self.schedulerId)
                self._send(slot, RunModel(action.modelID))
            elif isinstance(action, StopSlot):
                _log.debug("stop slot %d (model=%s)", action.slot,
                           self._slots[action.slot].modelID)
                self._send(self._slots[action.slot], StopRun())
            elif isinstance(action, AckNotifications):
                for tag in action.tags:
                    try:
                        self._swapper.bus.ack(tag)
                    except BusError:
                        _log.info("notification %d could not be acked (connection lost?); "
                                  "it will be redelivered", tag)

    def _inputPending(self, modelID: str) -> bool:
        assert self._swapper is not None
        try:
            return self._swapper.bus.message_count(
                self._swapper.getModelInputQueueName(modelID)) > 0
        except QueueNotFoundError:
            return False

    def _onSlotMessage(self, slot: _Slot, message: object) -> None:
        if isinstance(message, SlotReady):
            slot.ready = True
            return
        if isinstance(message, RunStarted):
            self._controller.onModelStarted(message.model_id)
            return
        if not isinstance(message, RunDone):
            _log.error("slot %d sent unexpected %r", slot.index, message)
            return
        modelID, outcome, detail = message.model_id, message.outcome, message.detail
        slot.modelID = None
        # A drained run is routine (each new batch of a live metric): DEBUG; the rest INFO.
        report = f"slot {slot.index}: model={modelID} {outcome} ({detail})"
        if outcome == "drained":
            _log.debug("%s", report)
            self._lastRuns[slot.index] = report
        else:
            _log.info("%s", report)
            self._lastRuns.pop(slot.index, None)
        if outcome == ERROR:
            self._apply(self._controller.onModelDone(modelID, True, self._failed(modelID)))
        elif outcome == LOCKED:
            self._apply(self._controller.onModelDone(modelID, True, LOCKED_RETRY_SECONDS))
        else:
            self._failures.pop(modelID, None)
            if outcome == "deleted":
                # before onModelDone: a model defined again after the delete is scheduled
                # as a new one (its input queue was kept), with a fresh slot affinity
                self._controller.forgetModel(modelID)
            # a drained runner saw its queue empty (input published later comes with a
            # notification, which the controller remembers if it arrived during the run):
            # only a stopped run, or a delete with a new definition queued behind it, may
            # have left input behind
            pending = (outcome in ("stopped", "deleted")
                       and self._inputPending(modelID))
            self._apply(self._controller.onModelDone(modelID, pending))

    def _failed(self, modelID: str) -> float:
        """Seconds before retrying a model whose run failed: 0 the first time, then 2, 4, ...
        up to MAX_FAILURE_RETRY_SECONDS (a model that keeps crashing must not hog a slot)."""
        failures = self._failures[modelID] = self._failures.get(modelID, 0) + 1
        return 0.0 if failures == 1 else min(MAX_FAILURE_RETRY_SECONDS, 2.0 ** (failures - 1))

    def _onSlotDeath(self, slot: _Slot) -> None:
        _log.error("slot %d (pid %s) died with exit code %s while running model=%s",
                   slot.index, slot.process.pid, slot.process.exitcode, slot.modelID)
        modelID, slot.modelID = slot.modelID, None
        slot.conn.close()
        if not self._controller.stopping:
            self._slots[slot.index] = self._spawnSlot(slot.index)
        if modelID is not None:
            # its unacked input is redelivered; run it again
            self._apply(self._controller.onModelDone(modelID, True, self._failed(modelID)))

    def _waitForInput(self) -> None:
        """Wait at most POLL_SECONDS for the broker's socket or a slot's pipe to be readable."""
        assert self._swapper is not None
        waitables: list[Any] = [slot.conn for slot in self._slots if not slot.conn.closed]
        fileno = self._swapper.bus.socket_fileno()
        if fileno is not None:
            waitables.append(fileno)
        wait(waitables, timeout=POLL_SECONDS)

    def _pollSlots(self, timeout: float) -> None:
        connections = {slot.conn: slot for slot in self._slots if not slot.conn.closed}
        for conn in wait(list(connections), timeout=timeout):
            slot = connections[conn]  # type: ignore[index]
            try:
                while slot.conn.poll():
                    self._onSlotMessage(slot, slot.conn.recv())
            except (EOFError, OSError):
                slot.process.join(timeout=5)
                self._onSlotDeath(slot)
        for slot in list(self._slots):
            if not slot.conn.closed and not slot.process.is_alive() and not slot.conn.poll():
                self._onSlotDeath(slot)

    # -- main loop -------------------------------------------------------------------------

    def _onSignal(self, signum: int, _frame: Any) -> None:
        _log.info("signal %d: stopping", signum)
        self._stopSignalled = True

    def _scheduleStartupBacklog(self) -> None:
        assert self._swapper is not None
        pending = self._swapper.getModelsWithInputPending(ModelCheckpointMgr().getModelIDs())
        _log.info("%d model(s) of the checkpoint archive have pending input", len(pending))
        for modelID in pending:
            self._apply(self._controller.onNotification(modelID))

    def _logSlotSummary(self, force: bool = False) -> None:
        """Log the last unlogged run report of each slot at INFO (every few seconds)."""
        now = time.monotonic()
        if not force and now - self._lastSummary < SLOT_SUMMARY_SECONDS:
            return
        self._lastSummary = now
        for index in sorted(self._lastRuns):
            _log.info("last run, %s", self._lastRuns[index])
        self._lastRuns.clear()

    def _refreshOldTokens(self) -> None:
        """Re-notify, then ack, notifications held too long (the fresh one is held next)."""
        assert self._swapper is not None
        now = time.monotonic()
        if now - self._lastTokenRefresh < 10.0:
            return
        self._lastTokenRefresh = now
        for modelID, tag in self._controller.tokensHeldLongerThan(TOKEN_REFRESH_SECONDS):
            self._swapper.notifyScheduler(modelID)
            self._controller.releaseToken(modelID)
            self._apply([AckNotifications((tag,))])

    def _consumeOnce(self) -> None:
        """Consume notifications until the connection drops or a stop is requested."""
        assert self._swapper is not None
        with self._swapper.consumeModelSchedulerNotifications(
                inactivity_timeout=DRAIN_SECONDS) as consumer:
            for notification in consumer:
                if notification is not None:
                    self._apply(self._controller.onNotification(notification.value,
                                                                notification.deliveryTag))
                else:
                    self._waitForInput()
                self._pollSlots(0)
                self._apply(self._controller.tick())
                self._refreshOldTokens()
                self._logSlotSummary()
                if self._stopSignalled:
                    return

    def run(self) -> None:
        """Run until SIGINT/SIGTERM; then stop the slots gracefully."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._onSignal)
        self._startSlots()    # before any thread or connection: the slots are forked
        engine_metrics.start_heartbeat("model_scheduler")
        _log.info("model scheduler %s running with %d slots, %.0f MB of resident models each",
                  self.schedulerId, self._numSlots, self._slotBudgetBytes / 2**20)
        self._swapper = ModelSwapperInterface(settings=self._settings)
        try:
            self._swapper.initSchedulerNotification()
            self._scheduleStartupBacklog()
            while not self._stopSignalled:
                try:
                    self._consumeOnce()
                except BusConnectionError as error:
                    # connection lost (logged once per outage by the bus): unacked
                    # notifications are redelivered
                    _log.debug("notification consumer lost its connection (%r); restarting "
                               "it", error)
                    self._controller.forgetTokens()
                    time.sleep(1.0)
                except BusError:
                    # channel lost: unacked notifications are redelivered
                    _log.warning("notification consumer failed; restarting it", exc_info=True)
                    self._controller.forgetTokens()
                    time.sleep(1.0)
            self._shutdown()
        finally:
            self._swapper.close()

    def _shutdown(self) -> None:
        self._apply(self._controller.requestStop())
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_SECONDS
        while not self._controller.idle and time.monotonic() < deadline:
            self._pollSlots(POLL_SECONDS)
        self._logSlotSummary(force=True)
        for slot in self._slots:
            self._send(slot, ExitSlot())
        for slot in self._slots:
            slot.process.join(timeout=10)
            if slot.process.is_alive():
                _log.error("slot %d did not exit; killing it", slot.index)
                slot.process.kill()
        _log.info("model scheduler stopped")


def preloadModelCode() -> bool:
    """Load the model code in this process (imports, numba kernels, a throw-away model run),
    so slots forked from it start warm; False (nothing to share, spawn the slots) when a
    $HTMENGINE_MODEL_FACTORY model replaces it or it cannot be loaded (each slot then reports
    the failure itself)."""
    if os.environ.get(MODEL_FACTORY_ENV):
        return False
    try:
        warm_up_model_code()
    except Exception:  # the slots try again, and report it
        _log.warning("loading the model code failed; spawning the slots", exc_info=True)
        return False
    return True


def forkedSlotMain(slot: int, conn: Connection, parentPid: int, logLevel: int,
                   budgetBytes: int, settings: SwapperSettings | None = None) -> None:
    """Entry point of a slot forked from the scheduler: forget the scheduler's log handlers
    and signal handlers (the slot sets its own), then run workerMain."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    workerMain(slot, conn, parentPid, logLevel, budgetBytes, settings)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="htmengine model scheduler service")
    parser.add_argument("--num-slots", type=int, default=None,
                        help="model-runner slots (default: model-swapper.conf num_slots)")
    parser.add_argument("--min-run-seconds", type=float, default=DEFAULT_MIN_RUN_SECONDS,
                        help="run time before a model may be preempted for a waiting one")
    parser.add_argument("--memory-budget-mb", type=int, default=None,
                        help="resident models, all slots (default: model-swapper.conf "
                             "memory_budget_mb; 0 there = half the RAM)")
    parser.add_argument("--log-level", default=os.environ.get("HTMENGINE_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [scheduler pid %(process)d] "
                               "%(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)   # outages: nta_utils.outage
    settings = SwapperSettings.from_config()
    numSlots = args.num_slots if args.num_slots else configuredNumSlots(settings)
    if numSlots < 1:
        parser.error(f"--num-slots must be >= 1, got {numSlots}")
    budget = (args.memory_budget_mb * 2**20 if args.memory_budget_mb
              else configuredMemoryBudgetBytes(settings))
    ModelSchedulerService(numSlots, minRunSeconds=args.min_run_seconds,
                          memoryBudgetBytes=budget, settings=settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
