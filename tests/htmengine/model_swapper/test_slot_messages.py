"""The typed messages of the scheduler <-> slot pipe: they cross a real pipe unchanged, refuse
malformed fields, and RunDone's outcomes are exactly the runner's outcomes plus locked/error."""

from __future__ import annotations

import multiprocessing

import pytest

from htmengine.model_swapper import slot_messages
from htmengine.model_swapper.errors import InvalidMessageError
from htmengine.model_swapper.model_runner import RunOutcome
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

MESSAGES = [RunModel("m1"), StopRun(), ExitSlot(), SlotReady(3, 4242), RunStarted("m1"),
            RunDone("m1", "drained", "batches=1"), RunDone("m2", LOCKED, "locked elsewhere"),
            RunDone("m3", ERROR, "RuntimeError('boom')")]


def test_messages_cross_a_pipe_unchanged() -> None:
    parent, child = multiprocessing.get_context("spawn").Pipe(duplex=True)
    try:
        for message in MESSAGES:
            parent.send(message)
            received = child.recv()
            assert received == message and type(received) is type(message)
    finally:
        parent.close()
        child.close()


def test_messages_are_immutable() -> None:
    with pytest.raises(AttributeError):
        RunModel("m1").model_id = "m2"  # type: ignore[misc]


def test_outcomes_are_the_runner_outcomes_plus_locked_and_error() -> None:
    assert slot_messages.RUN_OUTCOMES == tuple(outcome.value for outcome in RunOutcome)
    assert slot_messages.OUTCOMES == (*slot_messages.RUN_OUTCOMES, LOCKED, ERROR)
    for outcome in RunOutcome:
        assert RunDone("m", outcome.value, "").outcome == outcome.value


@pytest.mark.parametrize("build", [
    lambda: RunModel(""),
    lambda: RunModel(7),  # type: ignore[arg-type]
    lambda: RunStarted(None),  # type: ignore[arg-type]
    lambda: RunDone("", "drained", ""),
    lambda: RunDone("m", "finished", ""),
])
def test_malformed_messages_are_refused(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidMessageError):
        build()
