"""ResidentModels: eviction order (furthest expected next use, LRU fallback), byte budget
accounting, the running model kept."""

from __future__ import annotations

import random

import pytest

from htmengine.model_swapper.resident_models import ResidentModels


def test_eviction_is_least_recently_used_first() -> None:
    resident: ResidentModels[str] = ResidentModels(300)
    for name in "abc":
        resident.put(name, name.upper(), 100)
    assert resident.get("a") == "A"            # a becomes the most recently used
    assert resident.evictionOrder() == ["b", "c", "a"]
    resident.put("d", "D", 100)
    assert resident.evictOverBudget() == [("b", "B")]
    assert resident.evictionOrder() == ["c", "a", "d"]
    assert resident.peek("c") == "C"           # peek does not reorder
    resident.put("e", "E", 150)
    assert [m for m, _ in resident.evictOverBudget()] == ["c", "a"]
    assert resident.evictionOrder() == ["d", "e"]


def test_budget_accounting_follows_puts_resizes_and_pops() -> None:
    resident: ResidentModels[int] = ResidentModels(1000)
    resident.put("a", 1, 400)
    resident.put("b", 2, 300)
    assert resident.totalBytes == 700 and len(resident) == 2
    resident.put("a", 1, 650)                  # a grew as it learned
    assert resident.totalBytes == 950 and resident.sizeOf("a") == 650
    assert resident.evictOverBudget() == []
    resident.put("b", 2, 500)
    assert resident.totalBytes == 1150
    assert resident.evictOverBudget() == [("a", 1)]
    assert resident.totalBytes == 500
    assert resident.pop("b") == 2 and resident.pop("b") is None
    assert resident.totalBytes == 0 and "b" not in resident


def test_the_running_model_is_kept_and_a_model_over_the_whole_budget_goes_after_its_run(
) -> None:
    resident: ResidentModels[str] = ResidentModels(100)
    resident.put("small", "s", 40)
    resident.put("huge", "h", 500)
    # while huge runs, everything else goes; huge itself stays over budget
    assert resident.evictOverBudget(keep={"huge"}) == [("small", "s")]
    assert resident.totalBytes == 500
    # after its run it is evicted too: the slot never stays over budget
    assert resident.evictOverBudget() == [("huge", "h")]
    assert resident.totalBytes == 0


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="budgetBytes"):
        ResidentModels(-1)
    with pytest.raises(ValueError, match="nbytes"):
        ResidentModels(10).put("a", 1, -5)


# --- furthest expected next use first (Belady's rule with predicted arrivals) -------------

class _LruReference:
    """Least recently used eviction, written out plainly: the reference the policy beats."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.order: list[str] = []

    def access(self, modelID: str) -> bool:
        """Run `modelID`; True on a hit."""
        hit = modelID in self.order
        if hit:
            self.order.remove(modelID)
        self.order.append(modelID)
        del self.order[:-self.capacity]
        return hit


def _slot_access(resident: ResidentModels[str], modelID: str, at: float,
                 nbytes: int = 100) -> bool:
    """What the slot does for one run with new input at `at` (the model is loaded if it is
    not resident, run, put back, then the slot evicts down to its budget); True on a hit."""
    hit = resident.get(modelID) is not None
    resident.put(modelID, modelID, nbytes)
    resident.noteArrival(modelID, at)
    resident.evictOverBudget(now=at)
    assert resident.totalBytes <= resident.budgetBytes
    return hit


def _round_robin(models: int, periods: int, period: float = 60.0,
                 jitter: float = 0.0, seed: int = 1) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    spacing = period / models
    return [(f"m{i}", p * period + i * spacing + rng.uniform(-jitter, jitter) * spacing)
            for p in range(periods) for i in range(models)]


@pytest.mark.parametrize(("models", "capacity", "jitter"),
                         [(10, 7, 0.0), (10, 7, 0.4), (25, 5, 0.0), (12, 11, 0.3),
                          (40, 30, 0.45)])
def test_periodic_models_miss_about_one_minus_budget_share_where_lru_always_misses(
        models: int, capacity: int, jitter: float) -> None:
    warmup, periods = 3, 12
    arrivals = _round_robin(models, periods, jitter=jitter)
    resident: ResidentModels[str] = ResidentModels(capacity * 100)
    lru = _LruReference(capacity)
    ours = theirs = counted = 0
    for n, (modelID, at) in enumerate(arrivals):
        hit = _slot_access(resident, modelID, at)
        lru_hit = lru.access(modelID)
        if n >= warmup * models:
            counted += 1
            ours += not hit
            theirs += not lru_hit
    assert theirs / counted == 1.0                # LRU: the evicted one is always next
    assert abs(ours / counted - (1 - capacity / models)) <= 0.02
    assert len(resident) == capacity


def test_a_fleet_with_one_arrival_per_model_is_predicted_from_the_first_gap_on() -> None:
    # one sample per model at start-up (a warm-up spread over 100 s), then round robin at
    # 60 s: the first gaps give a typical period, so models with a single arrival are already
    # expected back in order and a fixed subset stays resident, where least-recently-used
    # order (what a model with one arrival had without the prior) misses every sample of the
    # first round
    models, capacity = 20, 10
    resident: ResidentModels[str] = ResidentModels(capacity * 100)
    lru = _LruReference(capacity)
    for i in range(models):
        _slot_access(resident, f"m{i}", i * 5.0)
        lru.access(f"m{i}")
    assert resident.typicalPeriod() is None
    misses = lru_misses = 0
    for i in range(models):
        misses += not _slot_access(resident, f"m{i}", 200.0 + i * 3.0)
        lru_misses += not lru.access(f"m{i}")
        assert resident.typicalPeriod() == pytest.approx(200.0 - i)  # median gap
    assert lru_misses == models
    assert misses <= models - capacity + 1


def test_without_a_period_the_order_is_least_recently_used() -> None:
    resident: ResidentModels[str] = ResidentModels(1000)
    # one arrival each (no gap yet), then irregular gaps for some: LRU order either way
    for n, name in enumerate("abcde"):
        resident.put(name, name, 100)
        resident.noteArrival(name, float(n))
    assert resident.evictionOrder(now=5.0) == list("abcde")
    t = 5.0
    for gap in (1.0, 30.0, 2.0, 25.0, 1.0, 40.0):          # c and a: irregular gaps
        for name in "ca":
            t += gap if name == "c" else 0.5
            resident.get(name)
            resident.noteArrival(name, t)
    for name in "ca":
        history = resident.arrivalHistory(name)
        assert history is not None and not history.regular()
    lru = _LruReference(5)
    for name in "abcde" + "ca" * 6:
        lru.access(name)
    assert resident.evictionOrder(now=t + 1.0) == lru.order == ["b", "d", "e", "c", "a"]
    resident.put("f", "f", 700)                             # no arrival noted: first to go
    assert resident.evictionOrder(now=t + 1.0)[0] == "f"


def test_a_steady_model_is_kept_until_it_is_due_and_a_silent_one_goes_first() -> None:
    resident: ResidentModels[str] = ResidentModels(300)
    for k in range(5):                  # "steady": every 10 s; "busy": every 3 s
        resident.put("steady", "s", 100)
        resident.noteArrival("steady", 10.0 * k)
    for k in range(14):
        resident.put("busy", "b", 100)
        resident.noteArrival("busy", 3.0 * k)
    resident.put("once", "o", 100)
    resident.noteArrival("once", 41.0)
    # at 40.5: steady is due at 50, busy at 42, once (one arrival) after the typical
    # period, the median gap of the slot (busy's 3 s): at 44
    assert resident.typicalPeriod() == pytest.approx(3.0)
    assert resident.expectedNextUse("steady", now=40.5) == pytest.approx(50.0)
    assert resident.expectedNextUse("busy", now=40.5) == pytest.approx(42.0)
    assert resident.expectedNextUse("once", now=40.5) == pytest.approx(44.0)
    assert resident.evictionOrder(now=40.5) == ["steady", "once", "busy"]
    # steady late by less than a period is still expected (kept); busy, silent for more than
    # four of its periods, goes first
    assert resident.evictionOrder(now=55.0) == ["busy", "once", "steady"]
    for k in range(14, 25):
        resident.put("busy", "b", 100)
        resident.noteArrival("busy", 3.0 * k)
    # at 75 steady has been silent for three periods: it goes before the one-arrival model
    assert resident.evictionOrder(now=75.0) == ["steady", "once", "busy"]
    resident.put("new", "n", 100)
    resident.noteArrival("new", 75.0)
    assert resident.evictOverBudget(now=75.0) == [("steady", "s")]
    assert resident.arrivalHistory("steady") is not None   # kept for its next load
    assert resident.forget("busy") == "b" and resident.arrivalHistory("busy") is None
    assert resident.totalBytes == 200


def test_the_model_with_input_is_loaded_even_when_it_is_needed_furthest_of_all() -> None:
    resident: ResidentModels[str] = ResidentModels(300)
    for k in range(4):
        for n, name in enumerate("abc"):
            resident.put(name, name, 100)
            resident.noteArrival(name, 30.0 * k + n)
    # "late" (period 300 s) has input at 100; a, b, c are due at 120, 121, 122
    for at in (-500.0, -200.0):
        resident.noteArrival("late", at)
    resident.put("late", "L", 250)
    resident.noteArrival("late", 100.0)
    assert resident.evictionOrder(now=100.0) == ["late", "c", "b", "a"]
    evicted = resident.evictOverBudget(keep={"late"}, now=100.0)
    assert "late" in resident and [m for m, _ in evicted] == ["c", "b", "a"]
    assert resident.totalBytes == 250 <= resident.budgetBytes
    # after its run it is the furthest needed: the next eviction takes it, not a newcomer
    resident.put("a", "a", 100)
    resident.noteArrival("a", 120.0)
    assert [m for m, _ in resident.evictOverBudget(now=120.0)] == ["late"]


def test_random_arrivals_never_exceed_the_budget_or_refuse_a_model() -> None:
    rng = random.Random(7)
    resident: ResidentModels[str] = ResidentModels(1000)
    at = 0.0
    sizes = {f"m{i}": rng.randrange(50, 400) for i in range(30)}
    for _ in range(2000):
        at += rng.expovariate(1.0)
        modelID = rng.choice(list(sizes))
        resident.put(modelID, modelID, sizes[modelID])
        resident.noteArrival(modelID, at)
        # while it runs it is kept whatever its expected next use; then the slot fits again
        evicted = resident.evictOverBudget(keep={modelID}, now=at)
        assert modelID in resident and modelID not in dict(evicted)
        assert resident.totalBytes <= max(resident.budgetBytes, sizes[modelID])
        resident.evictOverBudget(now=at)
        assert resident.totalBytes <= resident.budgetBytes
        assert resident.totalBytes == sum(resident.sizeOf(m) for m, _ in resident.items())


@pytest.mark.parametrize("jitter", [0.0, 0.4])
def test_a_periodic_fleet_of_two_sizes_keeps_the_small_models_and_misses_less(
        jitter: float) -> None:
    # 10 small models (30 bytes) and 10 large ones (100 bytes), interleaved, budget 800:
    # kept are all small ones and 5 large ones (800 bytes), so 5 of 20 samples miss per
    # period; keeping models by next use alone would hold about 800 / 65 = 12 models
    # (8 of 20 miss)
    sizes = {f"m{i}": 30 if i % 2 else 100 for i in range(20)}
    warmup, periods = 3, 12
    resident: ResidentModels[str] = ResidentModels(800)
    misses: dict[str, int] = {}
    for n, (modelID, at) in enumerate(_round_robin(20, periods, jitter=jitter)):
        hit = _slot_access(resident, modelID, at, nbytes=sizes[modelID])
        if n >= warmup * 20 and not hit:
            misses[modelID] = misses.get(modelID, 0) + 1
    assert all(sizes[m] == 100 for m in misses)          # every small model stays
    assert sum(misses.values()) == 5 * (periods - warmup)
    assert len(misses) == 5                               # and a fixed subset of large ones
    assert sorted(resident.sizeOf(m) for m, _ in resident.items()) == [30] * 10 + [100] * 5


def test_the_time_until_next_use_is_weighed_by_size() -> None:
    resident: ResidentModels[str] = ResidentModels(10_000)
    for modelID, size in (("small", 10), ("large", 100), ("overdue", 100)):
        resident.put(modelID, modelID, size)
    for at in (0.0, 60.0):                       # all three every 60 s
        resident.noteArrival("small", at)
        resident.noteArrival("large", at - 30.0)
        resident.noteArrival("overdue", at - 50.0)
    # at 70: small is due in 50 s (x 10 = 500), large in 20 s (x 100 = 2000), overdue is
    # due now (0): large goes first although small is needed later
    assert resident.evictionOrder(now=70.0) == ["large", "small", "overdue"]
    # of one size, they go by expected next use alone
    resident.put("small", "small", 100)
    assert resident.evictionOrder(now=70.0) == ["small", "large", "overdue"]
