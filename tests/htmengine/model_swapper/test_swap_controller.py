"""SwapController policy: slots, FIFO, LRU preemption after a minimum run, notification tokens."""

from __future__ import annotations

import random

import pytest

from htmengine.model_swapper.swap_controller import (
    AckNotifications,
    StartModel,
    StopSlot,
    SwapController,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def acked(actions) -> list[int]:
    return [t for a in actions if isinstance(a, AckNotifications) for t in a.tags]


def test_models_fill_free_slots_then_wait_in_fifo_order() -> None:
    clock = Clock()
    ctl = SwapController(2, minRunSeconds=1.0, clock=clock)
    assert ctl.onNotification("a", 1) == [StartModel(0, "a")]
    assert ctl.onNotification("b", 2) == [StartModel(1, "b")]
    assert ctl.onNotification("c", 3) == []      # a and b ran < 1 s: no preemption yet
    assert ctl.onNotification("d", 4) == []
    assert ctl.waitingModels() == ["c", "d"]
    # b finishes with nothing pending: its token is acked and c gets slot 1
    actions = ctl.onModelDone("b", morePending=False)
    assert acked(actions) == [2]
    assert StartModel(1, "c") in actions
    assert ctl.runningModels() == {"a": 0, "c": 1}
    assert ctl.waitingModels() == ["d"]


def test_least_recently_active_model_is_preempted_after_min_run() -> None:
    clock = Clock()
    ctl = SwapController(2, minRunSeconds=1.0, clock=clock)
    ctl.onNotification("a", 1)
    ctl.onModelStarted("a")
    clock.now += 0.1
    ctl.onNotification("b", 2)
    ctl.onModelStarted("b")
    clock.now += 0.5
    ctl.onNotification("a", 3)          # a is active again (and 3 is acked: 1 is held)
    ctl.onNotification("c", 4)
    assert ctl.tick() == []             # nobody has run 1 s yet
    clock.now += 1.0
    assert ctl.tick() == [StopSlot(1)]  # b is the least recently active
    assert ctl.tick() == []             # one stop already pending for one waiting model
    actions = ctl.onModelDone("b", morePending=True)
    ctl.onModelStarted("c")
    # c (no slot yet) takes the freed slot 1, which owns it from now on; b still has input,
    # waits at the back of the FIFO for its own slot 1 and gets it once c has run 1 s
    assert actions == [StartModel(1, "c")]
    assert ctl.waitingModels() == ["b"]
    assert ctl.ownerOf("b") == ctl.ownerOf("c") == 1 and ctl.ownerOf("a") == 0
    assert ctl.heldTokens() == {"a": 1, "b": 2, "c": 4}
    clock.now += 0.5
    assert ctl.tick() == []
    clock.now += 0.5
    assert ctl.tick() == [StopSlot(1)]  # a keeps running: slot 0 has nobody waiting
    assert ctl.onModelDone("c", morePending=True) == [StartModel(1, "b")]


def test_tokens_are_held_once_per_model_and_acked_only_when_drained() -> None:
    ctl = SwapController(1, minRunSeconds=0.0, clock=Clock())
    ctl.onNotification("a", 10)
    assert acked(ctl.onNotification("a", 11)) == [11]   # a already holds token 10
    assert acked(ctl.onModelDone("a", morePending=True)) == []
    assert ctl.heldTokens() == {"a": 10}
    assert ctl.runningModels() == {"a": 0}             # rescheduled (only model)
    assert acked(ctl.onModelDone("a", morePending=False)) == [10]
    assert ctl.heldTokens() == {}
    assert ctl.idle


def test_failed_model_is_retried_after_a_delay() -> None:
    clock = Clock()
    ctl = SwapController(1, clock=clock)
    ctl.onNotification("a", 1)
    assert ctl.onModelDone("a", morePending=True, retryAfter=5.0) == []
    assert ctl.idle and ctl.isKnown("a")
    assert ctl.onNotification("a", 2) != [StartModel(0, "a")]  # still backing off
    clock.now += 5.0
    assert ctl.tick() == [StartModel(0, "a")]


def test_stop_requests_every_running_slot_and_leaves_new_notifications_unacked() -> None:
    ctl = SwapController(2, clock=Clock())
    ctl.onNotification("a", 1)
    ctl.onNotification("b", 2)
    ctl.onNotification("c", 3)
    assert set(ctl.requestStop()) == {StopSlot(0), StopSlot(1)}
    assert ctl.onNotification("d", 4) == []
    assert acked(ctl.onModelDone("a", morePending=False)) == [1]
    assert ctl.onModelDone("b", morePending=True) == []
    assert ctl.idle


def test_slot_affinity_prefers_the_slot_that_last_ran_the_model() -> None:
    ctl = SwapController(3, minRunSeconds=0.0, clock=Clock())
    for i, model in enumerate("abc"):
        ctl.onNotification(model, i)
    ctl.onModelDone("b", morePending=False)
    ctl.onModelDone("a", morePending=False)
    assert ctl.onNotification("b", 9) == [StartModel(1, "b")]


@pytest.mark.parametrize("seed", range(5))
def test_random_event_sequences_keep_invariants_and_every_model_finishes(seed: int) -> None:
    rng = random.Random(seed)
    clock = Clock()
    ctl = SwapController(3, minRunSeconds=0.5, clock=clock)
    pending = {f"m{i}": 0 for i in range(20)}   # batches waiting in each model's queue
    tag = 0
    unacked: set[int] = set()
    for _ in range(2000):
        clock.now += rng.random() * 0.2
        actions = []
        if rng.random() < 0.4:
            model = rng.choice(list(pending))
            pending[model] += 1
            tag += 1
            unacked.add(tag)
            actions += ctl.onNotification(model, tag)
        elif ctl.runningModels() and rng.random() < 0.5:
            model = rng.choice(list(ctl.runningModels()))
            pending[model] = max(0, pending[model] - rng.randint(1, 3))
            actions += ctl.onModelDone(model, morePending=pending[model] > 0)
        actions += ctl.tick()
        for action in actions:
            if isinstance(action, StartModel):
                ctl.onModelStarted(action.modelID)
        unacked -= set(acked(actions))
        slots = list(ctl.runningModels().values())
        assert len(slots) == len(set(slots)) <= 3
        assert not set(ctl.runningModels()) & set(ctl.waitingModels())
        # a model with pending input always holds a token or is scheduled
        for model, count in pending.items():
            if count:
                assert model in ctl.heldTokens() and ctl.isKnown(model)
    # drain everything
    for _ in range(1000):
        if not ctl.runningModels():
            break
        model = next(iter(ctl.runningModels()))
        pending[model] = 0
        unacked -= set(acked(ctl.onModelDone(model, morePending=False)))
    assert ctl.idle and not ctl.waitingModels()
    assert all(count == 0 for count in pending.values())
    assert not unacked and not ctl.heldTokens()


def test_a_model_whose_slot_has_not_started_it_is_not_preempted() -> None:
    clock = Clock()
    ctl = SwapController(1, minRunSeconds=1.0, clock=clock)
    ctl.onNotification("a", 1)
    ctl.onNotification("b", 2)
    clock.now += 10.0
    assert ctl.tick() == []          # the slot is still starting up
    ctl.onModelStarted("a")
    clock.now += 0.5
    assert ctl.tick() == []
    clock.now += 0.5
    assert ctl.tick() == [StopSlot(0)]


def test_old_tokens_are_reported_for_refresh_and_can_be_released() -> None:
    clock = Clock()
    ctl = SwapController(1, clock=clock)
    ctl.onNotification("a", 1)
    clock.now += 5
    ctl.onNotification("b", 2)
    clock.now += 10
    assert ctl.tokensHeldLongerThan(12) == [("a", 1)]
    assert ctl.releaseToken("a") == 1
    assert ctl.tokensHeldLongerThan(12) == []
    # the fresh notification sent in its place becomes the held token
    assert acked(ctl.onNotification("a", 3)) == []
    assert ctl.heldTokens() == {"a": 3, "b": 2}


def test_a_model_runs_only_in_its_owning_slot() -> None:
    ctl = SwapController(2, minRunSeconds=0.0, clock=Clock())
    ctl.onNotification("a", 1)
    ctl.onNotification("b", 2)
    assert ctl.owners() == {"a": 0, "b": 1}
    ctl.onModelDone("a", morePending=False)
    # slots 0 and 1 are both free when b runs again: it goes back to its own slot 1
    assert ctl.onModelDone("b", morePending=True) == [StartModel(1, "b")]
    # a new model goes to the free slot owning the fewest models
    assert ctl.onNotification("c", 4) == [StartModel(0, "c")]
    ctl.onModelDone("c", morePending=False)
    ctl.forgetModel("c")
    assert ctl.ownerOf("c") is None


@pytest.mark.parametrize("numSlots,numModels", [(1, 4), (2, 7), (3, 12)])
def test_fairness_no_model_starves_while_others_keep_getting_samples(numSlots: int,
                                                                       numModels: int) -> None:
    """Every model gets a sample every step; a stopped runner finishes one step later with
    input left. Each model must start again within one round of its slot's FIFO."""
    clock = Clock()
    minRun, step = 1.0, 0.1
    ctl = SwapController(numSlots, minRunSeconds=minRun, clock=clock)
    models = [f"m{i}" for i in range(numModels)]
    lastStart = {m: clock.now for m in models}
    maxGap = {m: 0.0 for m in models}
    stopping: list[str] = []
    tag = 0

    def apply(actions) -> None:
        bySlot = {slot: m for m, slot in ctl.runningModels().items()}
        for action in actions:
            if isinstance(action, StartModel):
                ctl.onModelStarted(action.modelID)
                maxGap[action.modelID] = max(maxGap[action.modelID],
                                             clock.now - lastStart[action.modelID])
                lastStart[action.modelID] = clock.now
            elif isinstance(action, StopSlot):
                stopping.append(bySlot[action.slot])

    for _ in range(3000):
        clock.now += step
        done, stopping[:] = list(stopping), []
        for model in done:
            apply(ctl.onModelDone(model, morePending=True))
        for model in models:
            tag += 1
            apply(ctl.onNotification(model, tag))
        apply(ctl.tick())
    perSlot = max(list(ctl.owners().values()).count(s) for s in range(numSlots))
    bound = perSlot * (minRun + 2 * step) + step
    assert len(ctl.owners()) == numModels
    assert max(maxGap.values()) <= bound, (maxGap, bound)
    assert all(clock.now - lastStart[m] <= bound for m in models)


def test_a_model_notified_while_it_ran_runs_again_though_its_runner_drained() -> None:
    ctl = SwapController(1, clock=Clock())
    ctl.onNotification("a", 1)
    ctl.onModelStarted("a")
    assert acked(ctl.onNotification("a", 2)) == [2]    # input came while a ran
    actions = ctl.onModelDone("a", morePending=False)  # its runner saw the queue empty
    assert acked(actions) == [] and actions == [StartModel(0, "a")]
    assert ctl.heldTokens() == {"a": 1}                # still the record of pending work
    ctl.onModelStarted("a")
    assert acked(ctl.onModelDone("a", morePending=False)) == [1]
    assert ctl.idle and ctl.waitingModels() == []


def test_many_waiting_models_start_in_fifo_order_and_balance_the_slots() -> None:
    clock = Clock()
    ctl = SwapController(3, minRunSeconds=1.0, clock=clock)
    models = [f"m{i:05d}" for i in range(3000)]
    started: list[str] = []
    for tag, modelID in enumerate(models, 1):
        started += [a.modelID for a in ctl.onNotification(modelID, tag)
                    if isinstance(a, StartModel)]
    while not ctl.idle:
        for modelID, _ in list(ctl.runningModels().items()):
            started += [a.modelID for a in ctl.onModelDone(modelID, morePending=False)
                        if isinstance(a, StartModel)]
    assert started == models
    counts = [0, 0, 0]
    for slot in ctl.owners().values():
        counts[slot] += 1
    assert counts == [1000, 1000, 1000]
    assert ctl.tick() == []


@pytest.mark.parametrize("seed", range(5))
def test_waiting_demand_kept_up_to_date_matches_the_fifo(seed: int) -> None:
    """The per-slot counts of waiting models (kept up to date, so an event is not O(waiting))
    always equal what the FIFO and the ownership say, through random notifications, runs
    ending with or without input left, retries, ticks and deletions."""
    rng = random.Random(seed)
    clock = Clock()
    ctl = SwapController(3, minRunSeconds=0.5, clock=clock)
    models = [f"m{i}" for i in range(12)]
    tag = 0
    for _ in range(3000):
        clock.now += rng.random() * 0.3
        event = rng.random()
        running = list(ctl.runningModels())
        if event < 0.5:
            tag += 1
            ctl.onNotification(rng.choice(models), tag)
        elif event < 0.85 and running:
            modelID = rng.choice(running)
            ctl.onModelStarted(modelID)
            if rng.random() < 0.1:
                ctl.forgetModel(modelID)    # deleted
            ctl.onModelDone(modelID, rng.random() < 0.5,
                            rng.choice([None, None, 0.2]))
        else:
            ctl.tick()
        wanted = {ctl.ownerOf(m) for m in ctl.waitingModels()} - {None}
        unowned = sum(ctl.ownerOf(m) is None for m in ctl.waitingModels())
        assert ctl._waitingDemand() == (frozenset(wanted), unowned)
