"""ResidentModels: which models a slot keeps in memory, within a byte budget. Free of I/O.

A slot keeps every model it runs resident after the run, so a model that gets one sample
every few minutes pays neither a load nor a checkpoint per sample. Whenever the bytes held
exceed the budget, models are evicted (the caller checkpoints an evicted model whose
uncheckpointed rows cannot be replayed when it is loaded again, then drops it) in the order
"largest time until expected next use x bytes first" — Belady's rule weighed by size (as
GreedyDual-Size weighs LRU: a load costs about the same for a small model as for a large one,
so a byte kept for a small model saves more loads), with the next use predicted from each
model's arrival history:

- the caller notes each arrival (``noteArrival(modelID, at)``: the time the slot ran the
  model for new input); the gaps between arrivals give an EWMA period and an EWMA of the
  absolute deviation from it (the estimator TCP uses for round-trip times);
- a model with a steady period is expected back at ``last arrival + period``; one that is
  late by up to a period is still expected (soon: it is kept), one silent for longer is
  treated like an irregular one;
- a model with one arrival only is expected back after the slot's typical period (the
  median of the last TYPICAL_GAPS gaps between arrivals of any model), like a steady one:
  in a fleet sampled at one period, prediction works from a model's first arrival instead
  of after its second (until then LRU order would evict exactly the next model needed);
- a model with an irregular period (deviation above half the period), a long silence, or
  one arrival while no gap was seen yet is expected back after as long again as it has been
  away (``now + (now - last arrival)``): among such models this is least-recently-used
  order;
- a model with no arrival noted goes first; a model due now or overdue goes last (its time
  until next use counts 0); ties go furthest expected next use first, then least recently
  used first. Models of one size are evicted furthest expected next use first.

Metrics sampled round robin at a steady period are the case LRU gets worst: the model it
evicts is always the next one needed (every sample misses while the budget holds fewer than
all models); this order keeps a fixed subset resident and evicts the model that just ran,
so the miss rate is about 1 - budget/models for models of one size. With models of several
sizes the subset kept is the smallest models (most of them per byte): a slot's budget then
holds more models than "furthest next use" alone keeps, and fewer samples need a load.
The arrival history of a model survives its eviction (it is a few floats) and is dropped
with ``forget`` when the model is deleted.

The model being run is never evicted while it runs; a single model larger than the whole
budget stays only for its run and is evicted right after. Sizes are bytes (the model's
``state_nbytes()``), not model counts, so smaller models mean more resident models at once.
Times are seconds on any monotonic clock the caller chooses; nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from htmengine.exceptions import InvalidInputError

T = TypeVar("T")

# EWMA weights of a new gap in the period and in its deviation (RFC 6298's 1/8 and 1/4 would
# follow a changed period more slowly; a quarter adapts within a few samples).
PERIOD_WEIGHT = 0.25
DEVIATION_WEIGHT = 0.25
# A period is trusted while its mean absolute deviation is at most this fraction of it.
MAX_RELATIVE_DEVIATION = 0.5
# The typical period (the prior of a model with one arrival) is the median of this many of
# the latest gaps between two arrivals of one model, whichever models they came from.
TYPICAL_GAPS = 63


@dataclass(slots=True)
class ArrivalHistory:
    """One model's arrivals: the last one, and the EWMA period and deviation of the gaps."""

    last: float
    period: float | None = None
    deviation: float = 0.0

    def note(self, at: float) -> float | None:
        """Record an arrival at time `at`; returns the gap since the last one (None for an
        arrival not after the last one, which moves nothing: the clock is monotonic, equal
        times add no gap)."""
        gap = at - self.last
        if gap <= 0.0:
            return None
        self.last = at
        if self.period is None:
            self.period = gap
            return gap
        self.deviation += DEVIATION_WEIGHT * (abs(gap - self.period) - self.deviation)
        self.period += PERIOD_WEIGHT * (gap - self.period)
        return gap

    def regular(self) -> bool:
        """True when the period is known and steady enough to predict the next arrival."""
        return (self.period is not None
                and self.deviation <= MAX_RELATIVE_DEVIATION * self.period)

    def expectedNext(self, now: float, typicalPeriod: float | None = None) -> float:
        """The expected time of the next arrival, as seen at `now`; a model with one
        arrival is expected after `typicalPeriod` (if given) as a steady one would be."""
        away = max(0.0, now - self.last)
        period = (self.period if self.regular()
                  else typicalPeriod if self.period is None else None)
        if period is not None:
            due = self.last + period
            if now <= due + period:    # on time, or late by less than a period: still due
                return due
        return now + away


class ResidentModels(Generic[T]):
    """A map modelID -> item with a byte size per item and a byte budget; evicts the model
    with the largest time until its expected next use x its bytes (LRU when nothing is
    known)."""

    def __init__(self, budgetBytes: int) -> None:
        if budgetBytes < 0:
            raise InvalidInputError(f"budgetBytes must be >= 0, got {budgetBytes}")
        self._budget = int(budgetBytes)
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()   # by last use
        self._total = 0
        self._arrivals: dict[str, ArrivalHistory] = {}
        self._latest = -math.inf     # the latest arrival noted: the default "now"
        self._gaps: deque[float] = deque(maxlen=TYPICAL_GAPS)
        self._typical: float | None = None    # median of _gaps, computed when needed

    @property
    def budgetBytes(self) -> int:
        """The budget in bytes."""
        return self._budget

    @property
    def totalBytes(self) -> int:
        """Bytes held by the resident models (the sum of their recorded sizes)."""
        return self._total

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, modelID: object) -> bool:
        return modelID in self._items

    def get(self, modelID: str) -> T | None:
        """The item of `modelID` (marked most recently used), or None."""
        entry = self._items.get(modelID)
        if entry is None:
            return None
        self._items.move_to_end(modelID)
        return entry[0]

    def peek(self, modelID: str) -> T | None:
        """The item of `modelID` without changing the order, or None."""
        entry = self._items.get(modelID)
        return None if entry is None else entry[0]

    def put(self, modelID: str, item: T, nbytes: int) -> None:
        """Insert or replace `modelID` as the most recently used, with its size in bytes.
        Does not evict: call evictOverBudget() afterwards."""
        if nbytes < 0:
            raise InvalidInputError(f"nbytes must be >= 0, got {nbytes}")
        self.pop(modelID)
        self._items[modelID] = (item, int(nbytes))
        self._total += int(nbytes)

    def pop(self, modelID: str) -> T | None:
        """Remove `modelID` (its arrival history stays); returns its item or None."""
        entry = self._items.pop(modelID, None)
        if entry is None:
            return None
        self._total -= entry[1]
        return entry[0]

    def sizeOf(self, modelID: str) -> int:
        """The recorded size of `modelID` (KeyError if not resident)."""
        return self._items[modelID][1]

    def noteArrival(self, modelID: str, at: float) -> None:
        """Record that `modelID` was run for new input at time `at` (resident or not)."""
        history = self._arrivals.get(modelID)
        if history is None:
            self._arrivals[modelID] = ArrivalHistory(at)
        else:
            gap = history.note(at)
            if gap is not None:
                self._gaps.append(gap)
                self._typical = None
        self._latest = max(self._latest, at)

    def typicalPeriod(self) -> float | None:
        """The median of the latest gaps between two arrivals of a model (None before the
        first gap): what a model with one arrival is expected to take."""
        if self._typical is None and self._gaps:
            self._typical = statistics.median(self._gaps)
        return self._typical

    def forget(self, modelID: str) -> T | None:
        """Remove `modelID` and its arrival history (a deleted model); returns its item."""
        self._arrivals.pop(modelID, None)
        return self.pop(modelID)

    def arrivalHistory(self, modelID: str) -> ArrivalHistory | None:
        """The arrival history of `modelID`, or None if no arrival was noted."""
        return self._arrivals.get(modelID)

    def expectedNextUse(self, modelID: str, now: float | None = None) -> float:
        """When `modelID` is expected to be needed next, as seen at `now` (default: the
        latest arrival noted); +inf when no arrival of it was noted."""
        history = self._arrivals.get(modelID)
        if history is None:
            return math.inf
        return history.expectedNext(self._now(now), self.typicalPeriod())

    def _now(self, now: float | None) -> float:
        if now is not None:
            return now
        return self._latest if self._latest > -math.inf else 0.0

    def _evictionKeys(self, now: float | None,
                      kept: set[str]) -> list[tuple[float, float, int, str]]:
        """(-time until expected next use x bytes, -expected next use, last-use rank,
        modelID) of the evictable models: smallest first is the first to evict."""
        at = self._now(now)
        typical = self.typicalPeriod()
        keys = []
        for rank, (modelID, (_, nbytes)) in enumerate(self._items.items()):
            if modelID in kept:
                continue
            history = self._arrivals.get(modelID)
            expected = math.inf if history is None else history.expectedNext(at, typical)
            weight = (math.inf if expected == math.inf
                      else max(0.0, expected - at) * max(nbytes, 1))
            keys.append((-weight, -expected, rank, modelID))
        return keys

    def evictionOrder(self, now: float | None = None) -> list[str]:
        """Resident model ids in eviction order at `now` (default: the latest arrival
        noted): largest time until expected next use x bytes first, then furthest expected
        next use, then least recently used."""
        return [key[-1] for key in sorted(self._evictionKeys(now, set()))]

    def items(self) -> list[tuple[str, T]]:
        """(modelID, item) pairs, least recently used first."""
        return [(modelID, entry[0]) for modelID, entry in self._items.items()]

    def evictOverBudget(self, keep: Iterable[str] = (),
                        now: float | None = None) -> list[tuple[str, T]]:
        """Remove models in eviction order (see evictionOrder) until the total fits the
        budget, never those in `keep`; returns the removed (modelID, item) pairs in the
        order removed."""
        evicted: list[tuple[str, T]] = []
        if self._total <= self._budget:
            return evicted
        keys = self._evictionKeys(now, set(keep))
        heapq.heapify(keys)
        while keys and self._total > self._budget:
            modelID = heapq.heappop(keys)[-1]
            item = self.pop(modelID)
            evicted.append((modelID, item))  # type: ignore[arg-type]
        return evicted
