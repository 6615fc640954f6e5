"""Values of `metric.status`."""

from __future__ import annotations

import enum


class MetricStatus(enum.IntEnum):
    """Values of `metric.status` (stored as integers; never renumber)."""

    UNMONITORED = 0     # metric exists, no model (data may still be stored)
    ACTIVE = 1          # model created, no errors
    CREATE_PENDING = 2  # model creation requested, not yet done
    ERROR = 4           # irrecoverable model error; `message` says why
    PENDING_DATA = 8    # model waits for enough data to estimate min/max
