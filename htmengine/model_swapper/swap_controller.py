"""SwapController: the scheduling policy of the model scheduler, free of I/O.

It decides which model runs in which slot. Inputs are events (a notification that a model has
new input, a slot finished a model, a clock tick, a stop request); outputs are actions for
the service to carry out (start a model in a slot, ask a slot to stop, ack notifications).

Policy: a FIFO of models waiting for a slot. Every model is owned by one slot: the first time
it runs it is given the free slot that owns the fewest models, and from then on it runs only
in that slot (which keeps it resident in memory between runs, see resident_models). A waiting
model starts as soon as its slot is free, in FIFO order; when its slot is busy, the model
running there is asked to stop once it has run at least `minRunSeconds` since its slot
reported it started (so models are not thrashed); a waiting model that has no slot yet
preempts the least recently active running model (activity = start or new input) under the
same rule. A finished model with input left goes to the back of the FIFO, so every model with
input gets a turn of at least `minRunSeconds` within one round of its slot's FIFO: none
starves while others keep getting samples.

Notification tokens: the first unacked notification of a model is held as the durable record
that the model has pending work; later ones are acked at once. The held token is acked only
when the model's input queue was seen empty after a run, so a scheduler crash loses nothing.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from htmengine.exceptions import InvalidInputError


@dataclass(frozen=True)
class StartModel:
    """Run `modelID` in slot `slot`."""

    slot: int
    modelID: str


@dataclass(frozen=True)
class StopSlot:
    """Ask the runner in `slot` to checkpoint, ack and return (preemption or shutdown)."""

    slot: int


@dataclass(frozen=True)
class AckNotifications:
    """Ack these notification delivery tags."""

    tags: tuple[int, ...]


Action = StartModel | StopSlot | AckNotifications


@dataclass
class _Running:
    modelID: str
    slot: int
    startedAt: float | None     # None until the slot reports it started the model
    activeAt: float
    stopRequested: bool = False
    renotified: bool = False    # a notification arrived while it ran


@dataclass
class _ControllerState:
    waiting: deque[str] = field(default_factory=deque)
    waitingSet: set[str] = field(default_factory=set)        # the same ids, for lookups
    running: dict[str, _Running] = field(default_factory=dict)
    delayed: dict[str, float] = field(default_factory=dict)  # modelID -> retry time
    heldTokens: dict[str, int] = field(default_factory=dict)
    heldSince: dict[str, float] = field(default_factory=dict)
    owner: dict[str, int] = field(default_factory=dict)      # modelID -> owning slot


class SwapController:
    """Assigns models to `numSlots` slots; see the module docstring."""

    def __init__(self, numSlots: int, *, minRunSeconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if numSlots < 1:
            raise InvalidInputError(f"numSlots must be >= 1, got {numSlots}")
        self._numSlots = numSlots
        self._minRunSeconds = minRunSeconds
        self._clock = clock
        self._state = _ControllerState()
        self._freeSlots: list[int] = list(range(numSlots))
        self._stopping = False
        self._ownedCount = [0] * numSlots       # models owned per slot
        # waiting models per owning slot, and waiting models without an owner: kept up to
        # date as the FIFO and the ownership change, so an event costs O(slots), not
        # O(waiting) (a fleet that falls behind has thousands of models waiting)
        self._waitingOwned = [0] * numSlots
        self._waitingUnowned = 0

    # -- queries ---------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True after requestStop()."""
        return self._stopping

    @property
    def idle(self) -> bool:
        """True when no model runs."""
        return not self._state.running

    def runningModels(self) -> dict[str, int]:
        """modelID -> slot of the running models."""
        return {m: r.slot for m, r in self._state.running.items()}

    def waitingModels(self) -> list[str]:
        """The FIFO of models waiting for a slot, first first."""
        return list(self._state.waiting)

    def ownerOf(self, modelID: str) -> int | None:
        """The slot that owns (runs, keeps resident) `modelID`, None before its first run."""
        return self._state.owner.get(modelID)

    def owners(self) -> dict[str, int]:
        """modelID -> owning slot, for every model that has run."""
        return dict(self._state.owner)

    def forgetModel(self, modelID: str) -> None:
        """Drop the ownership of a deleted model (its run has ended)."""
        slot = self._state.owner.pop(modelID, None)
        if slot is not None:
            self._ownedCount[slot] -= 1
            if modelID in self._state.waitingSet:
                self._waitingOwned[slot] -= 1
                self._waitingUnowned += 1

    def heldTokens(self) -> dict[str, int]:
        """modelID -> held notification tag."""
        return dict(self._state.heldTokens)

    def isKnown(self, modelID: str) -> bool:
        """True if the model runs, waits or waits for a retry."""
        s = self._state
        return modelID in s.running or modelID in s.waitingSet or modelID in s.delayed

    # -- events ----------------------------------------------------------------------------

    def onNotification(self, modelID: str, tag: int | None = None) -> list[Action]:
        """New input for `modelID` (`tag`: the notification's delivery tag, if any)."""
        actions: list[Action] = []
        s = self._state
        if tag is not None:
            if modelID in s.heldTokens or self._stopping:
                if not self._stopping:
                    actions.append(AckNotifications((tag,)))
                # while stopping, leave it unacked: it is redelivered to the next scheduler
            else:
                s.heldTokens[modelID] = tag
                s.heldSince[modelID] = self._clock()
        if self._stopping:
            return actions
        running = s.running.get(modelID)
        if running is not None:
            running.activeAt = self._clock()
            running.renotified = True
        elif modelID not in s.waitingSet and modelID not in s.delayed:
            self._enqueue(modelID)
        actions.extend(self._schedule())
        return actions

    def onModelStarted(self, modelID: str) -> None:
        """The slot began running `modelID` (its minimum run time counts from now, not from
        the StartModel action: a slot may still be starting up)."""
        running = self._state.running.get(modelID)
        if running is not None:
            running.startedAt = self._clock()

    def onModelDone(self, modelID: str, morePending: bool,
                    retryAfter: float | None = None) -> list[Action]:
        """The runner of `modelID` returned and its slot is free. `morePending`: its input
        queue still has messages (or may have: abnormal end); `retryAfter`: seconds to wait
        before running it again (after a failure). A model notified while it ran counts as
        having more input (the runner may have seen its queue empty just before), so a
        runner that drained its queue can report False without asking the broker."""
        s = self._state
        running = s.running.pop(modelID, None)
        if running is None:
            raise InvalidInputError(f"model {modelID!r} is not running")
        morePending = morePending or running.renotified
        self._freeSlots.append(running.slot)
        actions: list[Action] = []
        if not morePending:
            tag = s.heldTokens.pop(modelID, None)
            s.heldSince.pop(modelID, None)
            if tag is not None:
                actions.append(AckNotifications((tag,)))
        elif retryAfter is not None and retryAfter > 0:
            s.delayed[modelID] = self._clock() + retryAfter
        elif not self._stopping:
            self._enqueue(modelID)
        if not self._stopping:
            actions.extend(self._schedule())
        return actions

    def tick(self) -> list[Action]:
        """Clock tick: release due retries, preempt if a model has run long enough."""
        if self._stopping:
            return []
        now = self._clock()
        s = self._state
        for modelID, due in list(s.delayed.items()):
            if due <= now:
                del s.delayed[modelID]
                if modelID not in s.running and modelID not in s.waitingSet:
                    self._enqueue(modelID)
        return self._schedule()

    def requestStop(self) -> list[Action]:
        """Stop: ask every running slot to stop; start nothing more."""
        self._stopping = True
        actions: list[Action] = []
        for running in self._state.running.values():
            if not running.stopRequested:
                running.stopRequested = True
                actions.append(StopSlot(running.slot))
        return actions

    def forgetTokens(self) -> None:
        """Drop held tokens without acking (their connection was lost; the broker
        redelivers them as new notifications)."""
        self._state.heldTokens.clear()
        self._state.heldSince.clear()

    def tokensHeldLongerThan(self, seconds: float) -> list[tuple[str, int]]:
        """(modelID, tag) of tokens held for more than `seconds` (the broker closes a
        channel whose delivery stays unacked past its consumer_timeout, 30 min by default;
        the service swaps such tokens for fresh notifications)."""
        now = self._clock()
        return [(m, self._state.heldTokens[m]) for m, since in self._state.heldSince.items()
                if now - since > seconds]

    def releaseToken(self, modelID: str) -> int | None:
        """Forget the model's held token (the caller acks it after re-notifying)."""
        self._state.heldSince.pop(modelID, None)
        return self._state.heldTokens.pop(modelID, None)

    # -- policy ----------------------------------------------------------------------------

    def _enqueue(self, modelID: str) -> None:
        """Append `modelID` (not running, waiting or delayed) to the waiting FIFO."""
        self._state.waiting.append(modelID)
        self._state.waitingSet.add(modelID)
        owner = self._state.owner.get(modelID)
        if owner is None:
            self._waitingUnowned += 1
        else:
            self._waitingOwned[owner] += 1

    def _takeSlot(self, modelID: str) -> int | None:
        """The slot to run `modelID` in now (its owner's, if free; for a model without an
        owner the free slot owning the fewest models, which becomes its owner), or None."""
        s = self._state
        owner = s.owner.get(modelID)
        if owner is not None:
            if owner not in self._freeSlots:
                return None
            self._freeSlots.remove(owner)
            return owner
        if not self._freeSlots:
            return None
        slot = min(self._freeSlots, key=lambda i: (self._ownedCount[i], i))
        self._freeSlots.remove(slot)
        s.owner[modelID] = slot
        self._ownedCount[slot] += 1
        return slot

    def _waitingDemand(self) -> tuple[frozenset[int], int]:
        """(slots owning a waiting model, number of waiting models without an owner)."""
        wanted = frozenset(slot for slot, count in enumerate(self._waitingOwned) if count)
        return wanted, self._waitingUnowned

    def _preemptible(self, running: _Running, now: float) -> bool:
        return (not running.stopRequested and running.startedAt is not None
                and now - running.startedAt >= self._minRunSeconds)

    def _schedule(self) -> list[Action]:
        actions: list[Action] = []
        s = self._state
        now = self._clock()
        if self._freeSlots and s.waiting:
            # FIFO: the first waiting models whose slot is free (or who have none yet) start;
            # the scan ends as soon as every slot is busy
            started: list[int] = []
            for index, modelID in enumerate(s.waiting):
                if not self._freeSlots:
                    break
                hadOwner = modelID in s.owner
                slot = self._takeSlot(modelID)
                if slot is None:
                    continue
                if hadOwner:
                    self._waitingOwned[slot] -= 1
                else:
                    self._waitingUnowned -= 1
                started.append(index)
                s.running[modelID] = _Running(modelID, slot, None, now)
                actions.append(StartModel(slot, modelID))
            for index in reversed(started):
                s.waitingSet.discard(s.waiting[index])
                del s.waiting[index]
        if not s.waiting:
            return actions
        wanted, unowned = self._waitingDemand()
        bySlot = {r.slot: r for r in s.running.values()}
        for slot in sorted(wanted):
            running = bySlot.get(slot)
            if running is not None and self._preemptible(running, now):
                running.stopRequested = True
                actions.append(StopSlot(slot))
        needed = unowned - sum(1 for r in s.running.values()
                               if r.stopRequested and r.slot not in wanted)
        if needed > 0:
            candidates = sorted((r for r in s.running.values() if self._preemptible(r, now)),
                                key=lambda r: r.activeAt)
            for running in candidates[:needed]:
                running.stopRequested = True
                actions.append(StopSlot(running.slot))
        return actions
