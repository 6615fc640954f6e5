"""Exact compact encodings of the backtracking TM's synapses in its saved state (TM state
version 4, see ``_tm_persist``), from and to the form it holds at rest (the index of each
synapse's source in the table of the cells used, the index of its permanence in the table of
the distinct permanences). numba, one or two passes each.

* :func:`transpose_sources` — the synapse sources of the live segments, listed segment by
  segment with each segment's sources in ascending order (as Cells4 keeps them), stored the
  other way round: for every cell of the table (ascending), the number of synapses it feeds
  and the gaps between the segments it feeds (ascending, the first one from segment 0).
  Segments learnt at the same step sit next to each other in the pool and share most of
  their sources, so most gaps are 1 or 2: one byte each (255 escapes to the exception
  list), which the compressor codes in a few bits and at its fastest level. A pool with a
  segment whose sources are not ascending is not transposed (``None``): the caller keeps the
  plain index form.
* :func:`untranspose_sources` — the inverse: the index of every synapse's source cell in
  segment order; ``None`` if the arrays do not fit together (corrupt state).
* :func:`nibble_index` / :func:`unnibble_index` — the permanence indices as 4-bit codes, two
  per byte, into the table reordered most frequent first, code 15 escaping to a list of
  indices; the 15 commonest permanences (the initial one, 1.0, a few steps from them) cover
  ~97% of the synapses.
"""

from __future__ import annotations

import numpy as np
from numba import njit

GAP_NIBBLE_ESCAPE = 15  # gap nibble: the gap is 15 + the next byte escape
WIDE_GAP = 255  # gaps from here on are in the wide list
GAP_BYTE_ESCAPE = WIDE_GAP - GAP_NIBBLE_ESCAPE  # byte escape: the gap is the next wide one
NIBBLE_ESCAPE = 15
_ORDER_SAMPLE = 8


def transpose_sources(index: np.ndarray, seg_n: np.ndarray, n_cells: int,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(synapses per cell, gap nibbles, byte escapes, wide escapes) of the sources ``index``
    (flat, segment order, ``seg_n`` per segment, indices below ``n_cells``), or ``None`` when
    a segment's sources are not ascending."""
    seg_n = np.ascontiguousarray(seg_n, dtype=np.int64)
    # the segment of every synapse in transposed order: uint16 when segments allow (half the
    # memory traffic of int32)
    segs = np.empty(index.shape[0], dtype=np.uint16 if seg_n.shape[0] <= 65536 else np.int32)
    counts, nibbles, small, n_small, wide, n_wide, ok = _transpose(
        np.ascontiguousarray(index), seg_n, n_cells, segs)
    if not ok:
        return None
    return (_narrow_uint(counts, int(counts.max(initial=0)) + 1), nibbles,
            small[:n_small].copy(),
            _narrow_uint(wide[:n_wide], seg_n.shape[0] + 1))


@njit(cache=True)
def _transpose(src: np.ndarray, seg_n: np.ndarray, n_cells: int, gaps: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, int, bool]:
    counts = _count(src, n_cells)
    n_syn = src.shape[0]
    cursor = np.empty(n_cells, dtype=np.int64)
    total = 0
    for c in range(n_cells):
        cursor[c] = total
        total += counts[c]
    # the segment of every synapse at its transposed position in ``gaps`` (a counting sort by
    # cell; its type holds every segment: below 2 ** 31, see _tm_persist.check_state)
    k = 0
    for p in range(seg_n.shape[0]):
        previous = np.int64(-1)
        for _ in range(seg_n[p]):
            cell = np.int64(src[k])
            if cell < previous:
                return counts, gaps.view(np.uint8), gaps.view(np.uint8), 0, counts, 0, False
            previous = cell
            gaps[cursor[cell]] = p
            cursor[cell] += 1
            k += 1
    # in place, from the end: the gaps between a cell's segments, the first one from 0
    first = np.empty(n_cells, dtype=np.int32)
    for c in range(n_cells):
        first[c] = gaps[cursor[c] - counts[c]] if counts[c] else 0
    for j in range(n_syn - 1, 0, -1):  # (wraps across cells, overwritten below)
        gaps[j] -= gaps[j - 1]
    for c in range(n_cells):
        if counts[c]:
            gaps[cursor[c] - counts[c]] = first[c]
    # 4-bit codes two per byte; the byte escapes and the wide gaps (branch-free compaction)
    nibbles = np.empty((n_syn + 1) // 2, dtype=np.uint8)
    for i in range(n_syn // 2):
        nibbles[i] = min(gaps[2 * i], GAP_NIBBLE_ESCAPE) \
            | (min(gaps[2 * i + 1], GAP_NIBBLE_ESCAPE) << 4)
    if n_syn % 2:
        nibbles[n_syn // 2] = min(gaps[n_syn - 1], GAP_NIBBLE_ESCAPE)
    small = np.empty(n_syn + 1, dtype=np.uint8)
    wide = np.empty(n_syn + 1, dtype=np.int64)
    n_small = 0
    n_wide = 0
    for i in range(n_syn):
        g = np.int64(gaps[i])
        small[n_small] = min(max(g - GAP_NIBBLE_ESCAPE, 0), GAP_BYTE_ESCAPE)
        n_small += int(g >= GAP_NIBBLE_ESCAPE)
        wide[n_wide] = g
        n_wide += int(g >= WIDE_GAP)
    return counts, nibbles, small, n_small, wide, n_wide, True


def untranspose_sources(counts: np.ndarray, nibbles: np.ndarray, small: np.ndarray,
                        wide: np.ndarray, seg_n: np.ndarray) -> np.ndarray | None:
    """The index (into the used cells) of every synapse's source, in segment order, from
    :func:`transpose_sources`'s arrays; ``None`` if they do not fit together or with the
    segment sizes ``seg_n``."""
    if nibbles.dtype != np.uint8 or small.dtype != np.uint8 \
            or min(counts.size and counts.min(), wide.size and wide.min()) < 0:
        return None
    seg_n = np.ascontiguousarray(seg_n, dtype=np.int64)
    if seg_n.size and seg_n.min() < 0:
        return None
    # written in the smallest type holding every index (what the caller narrows it to)
    dtype = np.uint8 if counts.shape[0] <= 256 else np.uint16 if counts.shape[0] <= 65536 \
        else np.int32
    out = np.empty(int(seg_n.sum()), dtype=dtype)
    ok = _untranspose(np.ascontiguousarray(counts, dtype=np.int64),
                      np.ascontiguousarray(nibbles), np.ascontiguousarray(small),
                      np.ascontiguousarray(wide, dtype=np.int64), seg_n, out)
    return out if ok else None


@njit(cache=True)
def _untranspose(counts: np.ndarray, nibbles: np.ndarray, small: np.ndarray, wide: np.ndarray,
                 seg_n: np.ndarray, out: np.ndarray) -> bool:
    high = seg_n.shape[0]
    offsets = np.empty(high + 1, dtype=np.int64)
    offsets[0] = 0
    for p in range(high):
        offsets[p + 1] = offsets[p] + seg_n[p]
    n_syn = offsets[high]
    if nibbles.shape[0] != (n_syn + 1) // 2 or out.shape[0] != n_syn:
        return False
    fill = np.zeros(high, dtype=np.int64)
    pos = 0
    i_small = 0
    i_wide = 0
    for u in range(counts.shape[0]):
        seg = np.int64(0)
        n = counts[u]
        if pos + n > n_syn:
            return False
        for _ in range(n):
            d = np.int64((nibbles[pos >> 1] >> ((pos & 1) * 4)) & 15)
            if d == GAP_NIBBLE_ESCAPE:
                if i_small >= small.shape[0]:
                    return False
                e = np.int64(small[i_small])
                i_small += 1
                if e > GAP_BYTE_ESCAPE:
                    return False
                if e == GAP_BYTE_ESCAPE:
                    if i_wide >= wide.shape[0]:
                        return False
                    d = wide[i_wide]
                    i_wide += 1
                    if d < WIDE_GAP:
                        return False
                else:
                    d += e
            seg += d
            if seg >= high or fill[seg] >= seg_n[seg]:
                return False
            out[offsets[seg] + fill[seg]] = u
            fill[seg] += 1
            pos += 1
    return (pos == n_syn and i_small == small.shape[0] and i_wide == wide.shape[0]
            and (n_syn % 2 == 0 or nibbles[n_syn >> 1] >> 4 == 0))


def nibble_index(index: np.ndarray, n_values: int,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order of the value table, most frequent first; 4-bit codes two per byte, low nibble
    first, into the reordered table; indices in it of the escaped synapses) of the value
    indices ``index`` (below ``n_values``)."""
    index = np.ascontiguousarray(index)
    # the order from every _ORDER_SAMPLE-th synapse: a tenth of the time of counting them all,
    # the same commonest permanences (any order is exact, the escapes list what it misses)
    counts = _count(index[::_ORDER_SAMPLE].copy(), n_values)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(n_values, dtype=np.int64)
    rank[order] = np.arange(n_values)
    packed, escapes, n_escapes = _pack_nibbles(index, rank)
    return order, packed, escapes[:n_escapes].astype(np.uint8 if n_values <= 256
                                                      else np.uint16)


@njit(cache=True)
def _count(index: np.ndarray, n_values: int) -> np.ndarray:
    # four partial counts, so that runs of one value do not wait on the same counter (int32,
    # half the cache: counts of a state are below 2 ** 31, see _tm_persist.check_state)
    partial = np.zeros((4, n_values), dtype=np.int32)
    n = index.shape[0]
    for i in range(n // 4):
        partial[0, index[4 * i]] += 1
        partial[1, index[4 * i + 1]] += 1
        partial[2, index[4 * i + 2]] += 1
        partial[3, index[4 * i + 3]] += 1
    for i in range(n - n % 4, n):
        partial[0, index[i]] += 1
    counts = np.empty(n_values, dtype=np.int64)
    for v in range(n_values):
        counts[v] = partial[0, v] + partial[1, v] + partial[2, v] + partial[3, v]
    return counts


@njit(cache=True)
def _pack_nibbles(index: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    n = index.shape[0]
    packed = np.empty((n + 1) // 2, dtype=np.uint8)
    escapes = np.empty(n + 1, dtype=np.int64)
    n_escapes = 0
    code = np.empty(rank.shape[0], dtype=np.uint8)
    for v in range(rank.shape[0]):
        code[v] = min(rank[v], NIBBLE_ESCAPE)
    for i in range((n + 1) // 2):  # one pass: the codes, and the (rare) escaped ranks
        low = index[2 * i]
        high = index[2 * i + 1] if 2 * i + 1 < n else low
        a = code[low]
        b = code[high] if 2 * i + 1 < n else np.uint8(0)
        packed[i] = a | (b << 4)
        if a == NIBBLE_ESCAPE or b == NIBBLE_ESCAPE:
            if a == NIBBLE_ESCAPE:
                escapes[n_escapes] = rank[low]
                n_escapes += 1
            if b == NIBBLE_ESCAPE:
                escapes[n_escapes] = rank[high]
                n_escapes += 1
    return packed, escapes, n_escapes


def unnibble_index(packed: np.ndarray, escapes: np.ndarray, n: int, n_values: int,
                    ) -> np.ndarray | None:
    """The value index of each of the ``n`` synapses coded by :func:`nibble_index`'s
    ``packed`` and ``escapes`` (indices below ``n_values``); ``None`` if they do not fit."""
    if packed.shape != ((n + 1) // 2,) or packed.dtype != np.uint8 \
            or (escapes.size and escapes.min() < 0):
        return None
    out, ok = _unpack_nibbles(np.ascontiguousarray(packed),
                              np.ascontiguousarray(escapes, dtype=np.int64), n, n_values)
    return out if ok else None


@njit(cache=True)
def _unpack_nibbles(packed: np.ndarray, escapes: np.ndarray, n: int, n_values: int,
                    ) -> tuple[np.ndarray, bool]:
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
