"""Indexing the backtracking TM's synapses when a model is switched out (packed to its state
at rest): the live segments' synapses gathered in pool order, their sources and permanences as
indices into tables of distinct values (see ``_tm_persist``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from htmengine.algorithms._codec import find_bits
from htmengine.algorithms._tm_state import SC_SEG_HIGH, Float32s, Int, Int32s, Int64s, TMArrays
from htmengine.algorithms._tm_store import count_synapses


@njit(cache=True)
def gather_synapses(seg_src: Int32s, seg_perm: Float32s, seg_n: Int32s,
                    high: Int) -> tuple[Int32s, Float32s]:
    """(sources, permanences) of the synapses of segments ``0..high`` in pool order."""
    total = 0
    for p in range(high):
        total += seg_n[p]
    src = np.empty(total, dtype=np.int32)
    perm = np.empty(total, dtype=np.float32)
    k = 0
    for p in range(high):
        for i in range(seg_n[p]):
            src[k] = seg_src[p, i]
            perm[k] = seg_perm[p, i]
            k += 1
    return src, perm


def index_pool(a: TMArrays) -> tuple[npt.NDArray[Any], npt.NDArray[Any], Float32s,
                                     npt.NDArray[np.uint8]] | None:
    """(distinct sources, source index, distinct permanences, permanence index) of the
    synapses of the live segments in pool order, as ``_codec.index_cells`` and
    ``_codec.index_small`` give them for the gathered synapses; None when the synapses have
    more than 256 distinct permanences.

    The sources in use are the cells whose out-synapse chains are not empty (every synapse
    of a live segment has its entry there, orphans included): one pass over the pool writes
    both indices and counts each source's synapses, checked against the chains' counts (if
    they differ, which a consistent working set never shows, two passes find the sources
    from the pool itself)."""
    high = a.sc[SC_SEG_HIGH]
    n_cells = a.nslots.shape[0]
    n_syn = count_synapses(a)
    used = np.flatnonzero(a.out_cnt)
    rank = np.full(n_cells, -1, dtype=np.int32)
    rank[used] = np.arange(used.shape[0], dtype=np.int32)
    perm_index = np.empty(n_syn, dtype=np.uint8)
    table = np.empty(256, dtype=np.int32)
    index: npt.NDArray[Any] = np.empty(n_syn, dtype=_uint_for(used.shape[0]))
    n_values = _index_synapses(a.seg_src, a.seg_perm.view(np.int32), a.seg_n, high, rank,
                               a.out_cnt, used, index, table, perm_index)
    if n_values == -2:
        return _index_pool_slow(a, n_syn)
    if n_values < 0:
        return None
    values, remap = _sorted_values(table, n_values)
    _remap_small(perm_index, remap)
    cells: npt.NDArray[Any] = used.astype(_uint_for(n_cells))
    return cells, index, values, perm_index


def _sorted_values(table: Int32s, n_values: int) -> tuple[Float32s, npt.NDArray[np.uint8]]:
    """The first ``n_values`` permanence bit patterns of ``table`` as sorted float32 values
    (as ``_codec.index_small``) and each one's rank among them."""
    values = table[:n_values].view(np.float32)
    order = np.argsort(values, kind="mergesort")  # as _codec.index_small
    remap = np.empty(n_values, dtype=np.uint8)
    remap[order] = np.arange(n_values, dtype=np.uint8)
    return values[order].copy(), remap


def _index_pool_slow(a: TMArrays, n_syn: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any],
                                                       Float32s, npt.NDArray[np.uint8]] | None:
    """:func:`index_pool` finding the sources in use from the pool (two passes)."""
    high = a.sc[SC_SEG_HIGH]
    n_cells = a.nslots.shape[0]
    rank = np.full(n_cells, -1, dtype=np.int32)
    perm_index = np.empty(n_syn, dtype=np.uint8)
    table = np.empty(256, dtype=np.int32)
    n_values, n_used = _mark_pool(a.seg_src, a.seg_perm.view(np.int32), a.seg_n, high, rank,
                                  table, perm_index)
    if n_values < 0:
        return None
    values, remap = _sorted_values(table, n_values)
    cells: npt.NDArray[Any] = np.empty(n_used, dtype=_uint_for(n_cells))
    index: npt.NDArray[Any] = np.empty(n_syn, dtype=_uint_for(n_used))
    _write_index(a.seg_src, a.seg_n, high, rank, cells, index, remap, perm_index)
    return cells, index, values, perm_index


@njit(cache=True)
def _index_synapses(seg_src: Int32s, perm_bits: Int32s, seg_n: Int32s, high: Int,
                    rank: Int32s, out_cnt: Int32s, used: Int64s,
                    index: npt.NDArray[np.integer[Any]], table: Int32s,
                    perm_index: npt.NDArray[np.uint8]) -> int:
    """The pass of :func:`index_pool`: each synapse's source ``rank`` into ``index``, its
    permanence's position in ``table`` (the distinct bit patterns in order of appearance)
    into ``perm_index``. Returns the number of distinct permanences, -1 beyond ``table``'s
    size, -2 if the sources' synapse counts are not ``out_cnt``'s."""
    slots = np.full(4 * table.shape[0], -1, dtype=np.int32)  # hash of the table (find_bits)
    memo = np.zeros(_MEMO, dtype=np.int32)  # as in _mark_pool
    seen = np.zeros(used.shape[0], dtype=np.int32)
    count = 0
    k = 0
    for p in range(high):
        for i in range(seg_n[p]):
            r = rank[seg_src[p, i]]
            if r < 0:
                return -2
            seen[r] += 1
            index[k] = r
            b = perm_bits[p, i]
            j = memo[b & (_MEMO - 1)]
            if j >= count or table[j] != b:
                j, count = find_bits(b, slots, table, count)
                if j < 0:
                    return -1
                memo[b & (_MEMO - 1)] = j
            perm_index[k] = j
            k += 1
    for r in range(used.shape[0]):
        if seen[r] != out_cnt[used[r]]:
            return -2
    return count


@njit(cache=True)
def _remap_small(codes: npt.NDArray[np.uint8], remap: npt.NDArray[np.uint8]) -> None:
    """``codes[k] = remap[codes[k]]`` in place."""
    for k in range(codes.shape[0]):
        codes[k] = remap[codes[k]]


_MEMO = 4096  # entries of _mark_pool's memo (a power of two)


def _uint_for(count: int) -> type:
    """The smallest unsigned type holding values below ``count`` (as ``_codec``'s)."""
    return np.uint8 if count <= 256 else np.uint16 if count <= 65536 else np.uint32


@njit(cache=True)
def _mark_pool(seg_src: Int32s, perm_bits: Int32s, seg_n: Int32s, high: Int, rank: Int32s,
               table: Int32s, perm_index: npt.NDArray[np.uint8]) -> tuple[int, int]:
    """First pass of :func:`index_pool`: flag the used sources in ``rank`` and rank them;
    collect the distinct permanence bit patterns in ``table`` in order of appearance and
    write each synapse's position there. Returns (distinct permanences or -1 beyond
    ``table``'s size, distinct sources)."""
    slots = np.full(4 * table.shape[0], -1, dtype=np.int32)  # hash of the table (find_bits)
    # a direct-mapped memo by the low bits: consecutive synapses seldom share a permanence, a
    # lookup without a hard-to-predict branch on most synapses
    memo = np.zeros(_MEMO, dtype=np.int32)
    count = 0
    k = 0
    for p in range(high):
        for i in range(seg_n[p]):
            rank[seg_src[p, i]] = 0
            b = perm_bits[p, i]
            j = memo[b & (_MEMO - 1)]
            if j >= count or table[j] != b:
                j, count = find_bits(b, slots, table, count)
                if j < 0:
                    return -1, 0
                memo[b & (_MEMO - 1)] = j
            perm_index[k] = j
            k += 1
    used = 0
    for c in range(rank.shape[0]):
        if rank[c] == 0:
            rank[c] = used
            used += 1
    return count, used


@njit(cache=True)
def _write_index(seg_src: Int32s, seg_n: Int32s, high: Int, rank: Int32s,
                 cells: npt.NDArray[np.integer[Any]], index: npt.NDArray[np.integer[Any]],
                 remap: npt.NDArray[np.uint8], perm_index: npt.NDArray[np.uint8]) -> None:
    """Second pass of :func:`index_pool`: the used sources, each synapse's source rank and
    its permanence's rank in the sorted table."""
    for c in range(rank.shape[0]):
        if rank[c] >= 0:
            cells[rank[c]] = c
    k = 0
    for p in range(high):
        for i in range(seg_n[p]):
            index[k] = rank[seg_src[p, i]]
            perm_index[k] = remap[perm_index[k]]
            k += 1

