"""ResidentModels: LRU eviction order, byte budget accounting, the running model kept."""

from __future__ import annotations

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
