"""Raw anomaly score of an HTM model (NuPIC ``computeRawAnomalyScore``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt


def computeRawAnomalyScore(activeColumns: Sequence[int] | npt.NDArray[np.integer[Any]],
                           prevPredictedColumns: Sequence[int] | npt.NDArray[np.integer[Any]]
                           ) -> float:
    """Fraction of the active columns that were not predicted in the previous step.

    Both arguments are collections of column indices. No active column gives 0.0, as in NuPIC.
    """
    active = np.asarray(activeColumns).ravel()
    if active.size == 0:
        return 0.0
    # A set lookup per active column: the same count as np.isin (duplicates of an active
    # column count each time) at a few microseconds instead of two sorts per record.
    predicted = set(np.asarray(prevPredictedColumns).ravel().tolist())
    hits = sum(1 for column in active.tolist() if column in predicted)
    return (active.size - hits) / float(active.size)
