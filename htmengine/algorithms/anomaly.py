"""Raw anomaly score of an HTM model (NuPIC ``computeRawAnomalyScore``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def computeRawAnomalyScore(activeColumns: Sequence[int] | np.ndarray,
                           prevPredictedColumns: Sequence[int] | np.ndarray) -> float:
    """Fraction of the active columns that were not predicted in the previous step.

    Both arguments are collections of column indices. No active column gives 0.0, as in NuPIC.
    """
    active = np.asarray(activeColumns).ravel()
    if active.size == 0:
        return 0.0
    predicted = np.asarray(prevPredictedColumns).ravel()
    hits = int(np.isin(active, predicted).sum())
    return (active.size - hits) / float(active.size)
