"""Which model component holds this process's working memory.

A model at rest holds only its compact state; to compute, a component builds its working
arrays (pools with room to grow, forward-propagation lists, per-cell flags, update queues,
dense matrices) from that state. Only one component of each kind keeps working arrays at a
time: when another one claims them, the current holder packs its state back and drops its
arrays. Consecutive steps of the same model pay nothing; a process running many models keeps
one working set per kind, however many models it holds. One step runs at a time per process
(``LOCK``).
"""

from __future__ import annotations

import threading
import weakref
from typing import Protocol


class Resident(Protocol):
    """A component with working arrays it can pack away."""

    def dehydrate(self) -> None:
        """Pack the working arrays into the compact state and drop them."""


LOCK = threading.RLock()
_holders: dict[str, weakref.ref[Resident]] = {}


def claim(kind: str, component: Resident) -> None:
    """Make ``component`` the holder of the working arrays of ``kind``, dehydrating the
    previous holder."""
    ref = _holders.get(kind)
    current = ref() if ref is not None else None
    if current is component:
        return
    with LOCK:
        if current is not None:
            current.dehydrate()
        _holders[kind] = weakref.ref(component)


def holds(kind: str, component: Resident) -> bool:
    """Whether ``component`` currently holds the working arrays of ``kind``."""
    ref = _holders.get(kind)
    return ref is not None and ref() is component
