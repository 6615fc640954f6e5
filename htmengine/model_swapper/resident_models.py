"""ResidentModels: which models a slot keeps in memory, within a byte budget. Free of I/O.

A slot keeps every model it runs resident after the run, so a model that gets one sample
every few minutes pays neither a load nor a checkpoint per sample. The set is ordered by last
use; whenever the bytes held exceed the budget, the least recently used models are evicted
(the caller checkpoints each evicted model that has uncheckpointed rows, then drops it). The
model being run is never evicted while it runs; a single model larger than the whole budget
stays only for its run and is evicted right after. Sizes are bytes (the model's
``state_nbytes()``), not model counts, so smaller models mean more resident models at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class ResidentModels(Generic[T]):
    """An LRU map modelID -> item with a byte size per item and a byte budget."""

    def __init__(self, budgetBytes: int) -> None:
        if budgetBytes < 0:
            raise ValueError(f"budgetBytes must be >= 0, got {budgetBytes}")
        self._budget = int(budgetBytes)
        self._items: OrderedDict[str, tuple[T, int]] = OrderedDict()
        self._total = 0

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
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        self.pop(modelID)
        self._items[modelID] = (item, int(nbytes))
        self._total += int(nbytes)

    def pop(self, modelID: str) -> T | None:
        """Remove `modelID`; returns its item or None."""
        entry = self._items.pop(modelID, None)
        if entry is None:
            return None
        self._total -= entry[1]
        return entry[0]

    def sizeOf(self, modelID: str) -> int:
        """The recorded size of `modelID` (KeyError if not resident)."""
        return self._items[modelID][1]

    def evictionOrder(self) -> list[str]:
        """Resident model ids, least recently used first."""
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(modelID, item) pairs, least recently used first."""
        return [(modelID, entry[0]) for modelID, entry in self._items.items()]

    def evictOverBudget(self, keep: Iterable[str] = ()) -> list[tuple[str, T]]:
        """Remove least recently used models until the total fits the budget, never those in
        `keep`; returns the removed (modelID, item) pairs, least recently used first."""
        kept = set(keep)
        evicted: list[tuple[str, T]] = []
        if self._total <= self._budget:
            return evicted
        for modelID in list(self._items):
            if self._total <= self._budget:
                break
            if modelID in kept:
                continue
            item = self.pop(modelID)
            evicted.append((modelID, item))  # type: ignore[arg-type]
        return evicted
