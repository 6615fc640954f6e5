"""numba kernels of the backtracking TM: each source cell's list of the segments it feeds
(Cells4's ``OutSynapses``), kept as chains of ``BLOCK``-entry blocks (see _tm_state.py)."""

from __future__ import annotations

from htmengine.algorithms._tm_ref import njit_borrowed
from htmengine.algorithms._tm_state import (
    BLOCK,
    SC_BLK_HIGH,
    SC_BLK_NFREE,
    Flag,
    Int,
    Int32s,
    Int64s,
)


@njit_borrowed
def out_add(sc: Int64s, out_cnt: Int32s, out_head: Int32s, out_tail: Int32s, blk: Int32s,
            blk_next: Int32s, blk_prev: Int32s, blk_free: Int32s, src: Int, p: Int,
            connected: Flag) -> None:
    """Record that source cell ``src`` feeds segment ``p`` (entry = 4*p + 2*orphan +
    connected; see :func:`out_mark_orphan`); the arrays are ``a``'s of the same names."""
    n = out_cnt[src]
    tail = out_tail[src]
    if n % BLOCK == 0:
        if sc[SC_BLK_NFREE] > 0:
            sc[SC_BLK_NFREE] -= 1
            b = blk_free[sc[SC_BLK_NFREE]]
        else:
            b = sc[SC_BLK_HIGH]
            sc[SC_BLK_HIGH] += 1
        blk_next[b] = -1
        blk_prev[b] = tail
        if tail >= 0:
            blk_next[tail] = b
        else:
            out_head[src] = b
        out_tail[src] = b
        tail = b
    blk[tail, n % BLOCK] = 4 * p + (1 if connected else 0)
    out_cnt[src] = n + 1


@njit_borrowed
def out_remove(sc: Int64s, out_cnt: Int32s, out_head: Int32s, out_tail: Int32s, blk: Int32s,
               blk_next: Int32s, blk_prev: Int32s, blk_free: Int32s, src: Int, p: Int) -> None:
    """Forget that ``src`` feeds segment ``p`` (no-op if it does not)."""
    n = out_cnt[src]
    b = out_head[src]
    seen = 0
    while b >= 0:
        m = min(BLOCK, n - seen)
        for j in range(m):
            if blk[b, j] >> 2 == p:
                tail = out_tail[src]
                blk[b, j] = blk[tail, (n - 1) % BLOCK]
                n -= 1
                out_cnt[src] = n
                if n % BLOCK == 0:
                    prev = blk_prev[tail]
                    if prev >= 0:
                        blk_next[prev] = -1
                    else:
                        out_head[src] = -1
                    out_tail[src] = prev
                    blk_free[sc[SC_BLK_NFREE]] = tail
                    sc[SC_BLK_NFREE] += 1
                return
        seen += m
        b = blk_next[b]


@njit_borrowed
def out_set_connected(out_cnt: Int32s, out_head: Int32s, blk: Int32s, blk_next: Int32s, src: Int,
                      p: Int, connected: Flag) -> None:
    """Update the connected flag of the entry ``src`` -> ``p``."""
    n = out_cnt[src]
    b = out_head[src]
    seen = 0
    while b >= 0:
        m = min(BLOCK, n - seen)
        for j in range(m):
            if blk[b, j] >> 2 == p:
                blk[b, j] = (blk[b, j] & ~1) | (1 if connected else 0)
                return
        seen += m
        b = blk_next[b]


@njit_borrowed
def out_mark_orphan(out_cnt: Int32s, out_head: Int32s, blk: Int32s, blk_next: Int32s, src: Int,
                    p: Int) -> None:
    """nupic.core 0.4.10 ``adaptSegment`` could erase the out-synapse of a synapse that stays
    on its segment (stale indices after pruning, see ``adapt_segment``).  Such an "orphan"
    synapse is invisible to forward propagation (``_inferActivity``/``_learnActivity``) but
    still counts where Cells4 reads the segment itself.  The entry is kept, flagged by bit 1."""
    n = out_cnt[src]
    b = out_head[src]
    seen = 0
    while b >= 0:
        m = min(BLOCK, n - seen)
        for j in range(m):
            e = blk[b, j]
            if e >> 2 == p:
                blk[b, j] = e | 2
                return
        seen += m
        b = blk_next[b]
