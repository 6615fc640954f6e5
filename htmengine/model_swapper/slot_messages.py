"""The messages of the duplex pipe between the model scheduler and a slot process
(slot_worker), pickled by multiprocessing.

Scheduler -> slot: `RunModel` (run the model until its queue is drained or it is stopped),
`StopRun` (stop the current run after the batch in progress: checkpoint, ack, report; a
stop that arrives after the run ended is ignored), `ExitSlot` (leave after the current run).

Slot -> scheduler: `SlotReady` once (after warming up the model code), then per run
`RunStarted` and `RunDone`, whose outcome is a `model_runner.RunOutcome` value, `LOCKED`
(another process holds the model) or `ERROR` (the run raised; `detail` is the error text).
"""

from __future__ import annotations

from dataclasses import dataclass

from htmengine.model_swapper.errors import InvalidMessageError

# RunDone outcomes besides the RunOutcome values (tests check they stay disjoint)
LOCKED = "locked"
ERROR = "error"
RUN_OUTCOMES = ("drained", "stopped", "deleted", "no_queue")
OUTCOMES = (*RUN_OUTCOMES, LOCKED, ERROR)


def _check_model_id(model_id: object, message: str) -> None:
    if not isinstance(model_id, str) or not model_id:
        raise InvalidMessageError(f"{message}.model_id must be a non-empty string, got "
                                  f"{model_id!r}")


@dataclass(frozen=True)
class RunModel:
    """Scheduler -> slot: run `model_id`."""

    model_id: str

    def __post_init__(self) -> None:
        _check_model_id(self.model_id, "RunModel")


@dataclass(frozen=True)
class StopRun:
    """Scheduler -> slot: stop the current run after the batch in progress."""


@dataclass(frozen=True)
class ExitSlot:
    """Scheduler -> slot: exit after the current run (checkpointing resident models)."""


@dataclass(frozen=True)
class SlotReady:
    """Slot -> scheduler: the slot process `pid` serves slot `slot`."""

    slot: int
    pid: int


@dataclass(frozen=True)
class RunStarted:
    """Slot -> scheduler: the run of `model_id` began."""

    model_id: str

    def __post_init__(self) -> None:
        _check_model_id(self.model_id, "RunStarted")


@dataclass(frozen=True)
class RunDone:
    """Slot -> scheduler: the run of `model_id` ended with `outcome` (one of OUTCOMES);
    `detail` is the run's counters, or the reason when it was locked or failed."""

    model_id: str
    outcome: str
    detail: str

    def __post_init__(self) -> None:
        _check_model_id(self.model_id, "RunDone")
        if self.outcome not in OUTCOMES:
            raise InvalidMessageError(f"RunDone.outcome must be one of {OUTCOMES}, got "
                                      f"{self.outcome!r}")


SchedulerMessage = RunModel | StopRun | ExitSlot
SlotMessage = SlotReady | RunStarted | RunDone
