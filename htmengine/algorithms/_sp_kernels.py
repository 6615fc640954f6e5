"""The spatial pooler's numba kernels (nupic.core 0.4.10 semantics, float32 arithmetic).

``spatial_pooler.SpatialPooler`` keeps the state and calls these on its dense arrays: a float32
permanence matrix (columns x inputs), a boolean potential mask and the transposed uint8
"connected" matrix (inputs x columns), with the connected synapse count per column.

* ``initialize_columns`` draws the potential pools and initial permanences in nupic.core's
  order from NuPIC's RNG;
* ``compute_overlaps`` and ``winners_integer`` are the overlap and global inhibition of an
  input (the boosted case is plain numpy in the class);
* ``adapt_synapses``, ``update_duty_cycles`` and ``bump_up_weak_columns`` are the learning
  steps; ``update_column`` (nupic.core's ``updatePermanencesForColumn_``) keeps a column's
  connectivity in step with its permanences.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
from numba import njit

from htmengine.algorithms.nupic_random import rng_real64, rng_sample

INIT_CONNECTED_PCT = 0.5

Bools: TypeAlias = npt.NDArray[np.bool_]
Float32s: TypeAlias = npt.NDArray[np.float32]
Int32s: TypeAlias = npt.NDArray[np.int32]
Int64s: TypeAlias = npt.NDArray[np.int64]
UInt8s: TypeAlias = npt.NDArray[np.uint8]


@njit(cache=True)
def round5(value: np.float32) -> np.float32:
    """nupic.core's round5_: truncate to 5 decimals (float32 product, double quotient)."""
    scaled = np.float32(value * np.float32(100000.0))
    return np.float32(float(np.int32(scaled)) / 100000.0)


@njit(cache=True)
def update_column(perm_row: Float32s, connected_t: UInt8s, column: int,
                  connected_counts: Int32s, syn_perm_connected: np.float32,
                  trim_threshold: np.float32, raise_perm: bool) -> None:
    """updatePermanencesForColumn_: (clip), count connected, clip+trim, store connectivity."""
    # nupic.core 0.4.10 (the version behind NAB's NuPIC result) compares with ``>=
    # synPermConnected`` exactly; the ``- PERMANENCE_EPSILON`` of later versions is not used.
    threshold = syn_perm_connected
    count = 0
    for i in range(perm_row.shape[0]):
        p = perm_row[i]
        if raise_perm:
            if p > np.float32(1.0):
                p = np.float32(1.0)
            if p < np.float32(0.0):
                p = np.float32(0.0)
        if p >= threshold:
            connected_t[i, column] = 1
            count += 1
        else:
            connected_t[i, column] = 0
        if p > np.float32(1.0):
            p = np.float32(1.0)
        if p < trim_threshold:
            p = np.float32(0.0)
        perm_row[i] = p
    connected_counts[column] = count


@njit(cache=True)
def initialize_columns(state: npt.NDArray[np.uint32], ptrs: Int64s, num_columns: int,
                       num_inputs: int, potential_radius: int, potential_pct: np.float32,
                       syn_perm_connected: np.float32, trim_threshold: np.float32,
                       potential: Bools, permanences: Float32s, connected_t: UInt8s,
                       connected_counts: Int32s) -> None:
    """Draw potential pools and initial permanences exactly in nupic.core's order."""
    for _ in range(num_columns):  # tieBreaker_ draws (unused with global inhibition)
        rng_real64(state, ptrs)
    pool_size = min(2 * potential_radius + 1, num_inputs)
    num_potential = np.int64(math.floor(np.float32(pool_size) * potential_pct + 0.5))
    ratio = np.float32(np.float32(num_inputs) / np.float32(num_columns))
    span = np.float32(np.float32(1.0) - syn_perm_connected)
    population = np.empty(pool_size, dtype=np.int64)
    for column in range(num_columns):
        # ((Real)column + 0.5) is a double in nupic.core; the ratio is a float.
        centre = np.int64(math.floor((float(column) + 0.5) * float(ratio)))
        for k in range(pool_size):
            population[k] = (centre - potential_radius + k) % num_inputs
        selected = rng_sample(state, ptrs, population, num_potential)
        for k in range(selected.shape[0]):
            potential[column, selected[k]] = True
        row = permanences[column]
        for i in range(num_inputs):
            if not potential[column, i]:
                continue
            if rng_real64(state, ptrs) <= INIT_CONNECTED_PCT:
                value = np.float32(syn_perm_connected + span * rng_real64(state, ptrs))
            else:
                value = np.float32(syn_perm_connected * rng_real64(state, ptrs))
            value = round5(value)
            if value < trim_threshold:
                value = np.float32(0.0)
            row[i] = value
        update_column(row, connected_t, column, connected_counts, syn_perm_connected,
                      trim_threshold, True)


@njit(cache=True)
def compute_overlaps(connected_t: UInt8s, active_inputs: Int64s, num_columns: int) -> Int32s:
    """Connected synapses on active inputs, per column."""
    overlaps = np.zeros(num_columns, dtype=np.int32)
    for k in range(active_inputs.shape[0]):
        row = connected_t[active_inputs[k]]
        for c in range(num_columns):
            overlaps[c] += row[c]
    return overlaps


@njit(cache=True)
def winners_integer(overlaps: Int32s, num_active: int, stimulus_threshold: int) -> Int64s:
    """Top ``num_active`` integer overlaps >= threshold, ties toward the higher index; sorted."""
    max_overlap = 0
    for c in range(overlaps.shape[0]):
        if overlaps[c] > max_overlap:
            max_overlap = overlaps[c]
    histogram = np.zeros(max_overlap + 1, dtype=np.int64)
    for c in range(overlaps.shape[0]):
        histogram[overlaps[c]] += 1
    above = 0
    level = max_overlap
    while level >= stimulus_threshold and level >= 0 and above + histogram[level] < num_active:
        above += histogram[level]
        level -= 1
    winners = np.empty(num_active, dtype=np.int64)
    count = 0
    if level < stimulus_threshold or level < 0:
        for c in range(overlaps.shape[0]):
            if overlaps[c] > level:
                winners[count] = c
                count += 1
        return winners[:count]
    for c in range(overlaps.shape[0]):
        if overlaps[c] > level:
            winners[count] = c
            count += 1
    needed = num_active - count
    c = overlaps.shape[0] - 1
    while needed > 0:
        if overlaps[c] == level:
            winners[count] = c
            count += 1
            needed -= 1
        c -= 1
    result = winners[:count]
    result.sort()
    return result


@njit(cache=True)
def adapt_synapses(permanences: Float32s, potential: Bools, connected_t: UInt8s,
                   connected_counts: Int32s, active_columns: Int64s, input_dense: Bools,
                   inc: np.float32, dec: np.float32, syn_perm_connected: np.float32,
                   trim_threshold: np.float32) -> None:
    """adaptSynapses_: +inc on active potential inputs, -dec on inactive ones, per winner."""
    negative_dec = np.float32(-dec)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for k in range(active_columns.shape[0]):
        column = active_columns[k]
        row = permanences[column]
        pot = potential[column]
        if syn_perm_connected > one:  # connectivity may disagree with the clipped value
            for i in range(row.shape[0]):
                if pot[i]:
                    row[i] = row[i] + (inc if input_dense[i] else negative_dec)
            update_column(row, connected_t, column, connected_counts, syn_perm_connected,
                          trim_threshold, True)
            continue
        # update_column(raise_perm=True) fused with the update. connected_t[i, column] is
        # (stored permanence >= synPermConnected), so it is written only where that flips:
        # the transposed matrix is read and written one strided byte per input otherwise.
        count = 0
        for i in range(row.shape[0]):
            old = row[i]
            p = old
            if pot[i]:
                p = p + (inc if input_dense[i] else negative_dec)
            if p > one:
                p = one
            if p < zero:
                p = zero
            now = p >= syn_perm_connected
            if now:
                count += 1
            if now != (old >= syn_perm_connected):
                connected_t[i, column] = 1 if now else 0
            if p < trim_threshold:
                p = zero
            row[i] = p
        connected_counts[column] = count


@njit(cache=True)
def update_duty_cycles(overlap_dc: Float32s, active_dc: Float32s, overlaps: Int32s,
                       active_columns: Int64s, period: int) -> None:
    """updateDutyCycles_ in float32: dc = (dc * (period - 1) + new) / period."""
    keep = np.float32(period - 1)
    divisor = np.float32(period)
    active_flag = np.zeros(overlap_dc.shape[0], dtype=np.bool_)
    for k in range(active_columns.shape[0]):
        active_flag[active_columns[k]] = True
    for c in range(overlap_dc.shape[0]):
        new_overlap = np.float32(1.0) if overlaps[c] > 0 else np.float32(0.0)
        new_active = np.float32(1.0) if active_flag[c] else np.float32(0.0)
        overlap_dc[c] = np.float32(overlap_dc[c] * keep + new_overlap) / divisor
        active_dc[c] = np.float32(active_dc[c] * keep + new_active) / divisor


@njit(cache=True)
def bump_up_weak_columns(permanences: Float32s, potential: Bools, connected_t: UInt8s,
                         connected_counts: Int32s, overlap_dc: Float32s,
                         min_overlap_dc: Float32s, bump: np.float32,
                         syn_perm_connected: np.float32, trim_threshold: np.float32,
                         touched: Bools) -> None:
    """bumpUpWeakColumns_: raise every potential permanence of under-used columns."""
    for column in range(overlap_dc.shape[0]):
        if overlap_dc[column] >= min_overlap_dc[column]:
            continue
        touched[column] = True
        row = permanences[column]
        pot = potential[column]
        for i in range(row.shape[0]):
            if pot[i]:
                row[i] = row[i] + bump
        update_column(row, connected_t, column, connected_counts, syn_perm_connected,
                      trim_threshold, False)

