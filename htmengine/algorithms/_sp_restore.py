"""Rebuilding the spatial pooler's dense working matrices in place (numba): the matrices
another pooler of the same parameters left are reset where they differ from the initial draw
and filled with this pooler's changed permanence rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit


@njit(cache=True)
def restore_columns(permanences: np.ndarray, connected_t: np.ndarray, counts: np.ndarray,
                    initial_perm: np.ndarray, initial_conn_t: np.ndarray,
                    initial_counts: np.ndarray, dirty: np.ndarray, columns: np.ndarray,
                    rows: np.ndarray, syn_perm_connected: float | np.floating[Any]) -> None:
    """Reset the ``dirty`` columns of reused working matrices to the initial state, then
    write the permanence ``rows`` of ``columns`` with their connections and counts (the
    transposed connection matrix is walked row by row: column-wise it misses the cache)."""
    n_inputs = permanences.shape[1]
    written = np.zeros(permanences.shape[0], dtype=np.bool_)
    for k in range(columns.shape[0]):
        written[columns[k]] = True
    reset = np.empty(dirty.shape[0], dtype=np.int64)
    n_reset = 0
    for k in range(dirty.shape[0]):
        if not written[dirty[k]]:
            reset[n_reset] = dirty[k]
            n_reset += 1
    for k in range(n_reset):
        c = reset[k]
        for i in range(n_inputs):
            permanences[c, i] = initial_perm[c, i]
        counts[c] = initial_counts[c]
    for k in range(columns.shape[0]):
        c = columns[k]
        count = 0
        for i in range(n_inputs):
            p = rows[k, i]
            permanences[c, i] = p
            if p >= syn_perm_connected:
                count += 1
        counts[c] = count
    for i in range(n_inputs):
        line = connected_t[i]
        for k in range(n_reset):
            line[reset[k]] = initial_conn_t[i, reset[k]]
        for k in range(columns.shape[0]):
            line[columns[k]] = 1 if rows[k, i] >= syn_perm_connected else 0
