"""Exact compact encodings of the backtracking TM's synapses (numba, one pass each), for its
state at rest and its checkpoints (TM state version 4, see ``_tm_persist``).

* :func:`transpose_sources` — the synapse sources of the live segments, listed segment by
  segment with each segment's sources in ascending order (as Cells4 keeps them), stored the
  other way round: for every source cell used (ascending), the number of synapses it feeds
  and the gaps between the segments it feeds (ascending, the first one from segment 0).
  Segments learnt at the same step sit next to each other in the pool and share most of
  their sources, so most gaps are 1 or 2: one byte each (255 escapes to the exception
  list), which the compressor codes in a few bits and at its fastest level. A pool with a
  segment whose sources are not ascending is not transposed (``None``): the caller keeps the
  plain index form.
* :func:`untranspose_sources` — the inverse: the index of every synapse's source cell in
  segment order; ``None`` if the arrays do not fit together (corrupt state).
* :func:`nibble_values` / :func:`unnibble_values` — few-valued float32 permanences as their
  distinct values (most frequent first) and one 4-bit code per synapse, two per byte, code
  15 escaping to an exception list of value indices; the 15 commonest values (the initial
  permanence, 1.0, a few steps from them) cover ~97% of the synapses.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from htmengine.algorithms._codec import index_small

GAP_NIBBLE_ESCAPE = 15  # gap nibble: the gap is 15 + the next byte escape
GAP_BYTE_ESCAPE = 255  # byte escape: the gap is the next wide escape
NIBBLE_ESCAPE = 15


def transpose_sources(src: np.ndarray, seg_n: np.ndarray, n_cells: int,
                      ) -> tuple[np.ndarray, ...] | None:
    """(used cells, synapses per used cell, gap nibbles, byte escapes, wide escapes) of the
    sources ``src`` (flat, segment order, ``seg_n`` per segment, cells below ``n_cells``),
    or ``None`` when a segment's sources are not ascending."""
    src = np.ascontiguousarray(src, dtype=np.int32)
    seg_n = np.ascontiguousarray(seg_n, dtype=np.int64)
    counts, nibbles, small, n_small, wide, n_wide, ok = _transpose(src, seg_n, n_cells)
    if not ok:
        return None
    used = np.flatnonzero(counts)
    return (_narrow_uint(used, n_cells), _narrow_uint(counts[used], src.shape[0] + 1),
            nibbles, small[:n_small].copy(),
            _narrow_uint(wide[:n_wide], seg_n.shape[0] + 1))


@njit(cache=True)
def _transpose(src, seg_n, n_cells):
    counts = np.zeros(n_cells, dtype=np.int64)
    n_syn = src.shape[0]
    for k in range(n_syn):
        counts[src[k]] += 1
    cursor = np.empty(n_cells, dtype=np.int64)
    total = 0
    for c in range(n_cells):
        cursor[c] = total
        total += counts[c]
    fed = np.empty(n_syn, dtype=np.int32)  # the segments each cell feeds, cell by cell
    nibbles = np.zeros((n_syn + 1) // 2, dtype=np.uint8)
    small = np.empty(n_syn, dtype=np.uint8)
    wide = np.empty(n_syn, dtype=np.int64)
    k = 0
    for p in range(seg_n.shape[0]):
        previous = -1
        for _ in range(seg_n[p]):
            c = np.int64(src[k])
            if c < previous:
                return counts, nibbles, small, 0, wide, 0, False
            previous = c
            fed[cursor[c]] = p
            cursor[c] += 1
            k += 1
    n_small = 0
    n_wide = 0
    pos = 0
    for c in range(n_cells):
        last = 0
        for _ in range(counts[c]):
            p = np.int64(fed[pos])
            d = p - last
            last = p
            if d >= GAP_NIBBLE_ESCAPE:
                e = d - GAP_NIBBLE_ESCAPE
                if e >= GAP_BYTE_ESCAPE:
                    wide[n_wide] = d
                    n_wide += 1
                    e = GAP_BYTE_ESCAPE
                small[n_small] = e
                n_small += 1
                d = GAP_NIBBLE_ESCAPE
            nibbles[pos >> 1] |= np.uint8(d << ((pos & 1) * 4))
            pos += 1
    return counts, nibbles, small, n_small, wide, n_wide, True


def untranspose_sources(counts: np.ndarray, nibbles: np.ndarray, small: np.ndarray,
                        wide: np.ndarray, seg_n: np.ndarray) -> np.ndarray | None:
    """The index (into the used cells) of every synapse's source, in segment order, from
    :func:`transpose_sources`'s arrays; ``None`` if they do not fit together or with the
    segment sizes ``seg_n``."""
    if nibbles.dtype != np.uint8 or small.dtype != np.uint8 \
            or min(counts.size and counts.min(), wide.size and wide.min()) < 0:
        return None
    out, ok = _untranspose(np.ascontiguousarray(counts, dtype=np.int64),
                           np.ascontiguousarray(nibbles), np.ascontiguousarray(small),
                           np.ascontiguousarray(wide, dtype=np.int64),
                           np.ascontiguousarray(seg_n, dtype=np.int64))
    return out if ok else None


@njit(cache=True)
def _untranspose(counts, nibbles, small, wide, seg_n):
    high = seg_n.shape[0]
    offsets = np.empty(high + 1, dtype=np.int64)
    offsets[0] = 0
    for p in range(high):
        offsets[p + 1] = offsets[p] + seg_n[p]
    n_syn = offsets[high]
    out = np.empty(n_syn, dtype=np.int32)
    if nibbles.shape[0] != (n_syn + 1) // 2:
        return out, False
    fill = np.zeros(high, dtype=np.int64)
    pos = 0
    i_small = 0
    i_wide = 0
    for u in range(counts.shape[0]):
        p = 0
        n = counts[u]
        if pos + n > n_syn:
            return out, False
        for _ in range(n):
            d = np.int64((nibbles[pos >> 1] >> ((pos & 1) * 4)) & 15)
            if d == GAP_NIBBLE_ESCAPE:
                if i_small >= small.shape[0]:
                    return out, False
                e = np.int64(small[i_small])
                i_small += 1
                if e == GAP_BYTE_ESCAPE:
                    if i_wide >= wide.shape[0]:
                        return out, False
                    d = wide[i_wide]
                    i_wide += 1
                    if d < GAP_NIBBLE_ESCAPE + GAP_BYTE_ESCAPE:
                        return out, False
                else:
                    d += e
            p += d
            if p >= high or fill[p] >= seg_n[p]:
                return out, False
            out[offsets[p] + fill[p]] = u
            fill[p] += 1
            pos += 1
    return out, (pos == n_syn and i_small == small.shape[0] and i_wide == wide.shape[0]
                 and (n_syn % 2 == 0 or nibbles[n_syn >> 1] >> 4 == 0))


def nibble_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(distinct float32 values, most frequent first; 4-bit codes two per byte, low nibble
    first; value indices of the escaped synapses) of ``values``, or ``None`` beyond 65,536
    distinct values."""
    coded = index_small(values)
    if coded is None:
        return None
    table, index = coded
    order = np.argsort(-np.bincount(index, minlength=table.shape[0]), kind="stable")
    rank = np.empty(table.shape[0], dtype=np.int64)
    rank[order] = np.arange(table.shape[0])
    packed, escapes, n_escapes = _pack_nibbles(index, rank)
    return (table[order], packed,
            escapes[:n_escapes].astype(np.uint8 if table.shape[0] <= 256 else np.uint16))


@njit(cache=True)
def _pack_nibbles(index, rank):
    n = index.shape[0]
    packed = np.zeros((n + 1) // 2, dtype=np.uint8)
    escapes = np.empty(n, dtype=np.int64)
    n_escapes = 0
    for i in range(n):
        r = rank[index[i]]
        if r >= NIBBLE_ESCAPE:
            escapes[n_escapes] = r
            n_escapes += 1
            r = NIBBLE_ESCAPE
        packed[i >> 1] |= np.uint8(r << ((i & 1) * 4))
    return packed, escapes, n_escapes


def unnibble_values(packed: np.ndarray, escapes: np.ndarray, n: int, n_values: int,
                    ) -> np.ndarray | None:
    """The value index of each of the ``n`` synapses coded by :func:`nibble_values`'s
    ``packed`` and ``escapes`` (indices below ``n_values``); ``None`` if they do not fit."""
    if packed.shape != ((n + 1) // 2,) or packed.dtype != np.uint8 \
            or (escapes.size and escapes.min() < 0):
        return None
    out, ok = _unpack_nibbles(np.ascontiguousarray(packed),
                              np.ascontiguousarray(escapes, dtype=np.int64), n, n_values)
    return out if ok else None


@njit(cache=True)
def _unpack_nibbles(packed, escapes, n, n_values):
    out = np.empty(n, dtype=np.int32)
    j = 0
    for i in range(n):
        r = np.int64((packed[i >> 1] >> ((i & 1) * 4)) & 15)
        if r == NIBBLE_ESCAPE:
            if j >= escapes.shape[0]:
                return out, False
            r = np.int64(escapes[j])
            j += 1
            if r < NIBBLE_ESCAPE:
                return out, False
        if r >= n_values:
            return out, False
        out[i] = r
    return out, j == escapes.shape[0]


def _narrow_uint(values: np.ndarray, bound: int) -> np.ndarray:
    """Non-negative ``values`` below ``bound`` in the smallest unsigned type."""
    dtype = np.uint8 if bound <= 256 else np.uint16 if bound <= 65536 else \
        np.uint32 if bound <= 2 ** 32 else np.uint64
    return np.asarray(values).astype(dtype)
