"""numba helpers for the backtracking TM's storage: slot-pool compaction, rebuilding the
out-synapse chains (used after loading and to keep the pools compact)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from htmengine.algorithms._tm_outsyn import out_add, out_mark_orphan
from htmengine.algorithms._tm_state import (
    BLOCK,
    FP_CONN,
    IP_MAX_LRN_BT,
    IP_MAX_SEGS,
    IP_NCOLS,
    IP_W,
    SC_BLK_HIGH,
    SC_BLK_NFREE,
    SC_LRN_HN,
    SC_NITER,
    SC_QLEN,
    SC_SEG_HIGH,
    SC_SEG_NFREE,
    SC_SLOT_TOP,
    Float32s,
    Int,
    Int32s,
    Int64s,
    Real,
    TMArrays,
)


@njit(cache=True)
def compact_slots(slot_off: Int64s, slot_cap: Int32s, nslots: Int32s, slots: Int64s,
                  extra: Int) -> tuple[Int64s, int]:
    """Repack every cell's slot list contiguously (capacity = its length) into a new array
    with ``extra`` free entries at the end; returns (new array, used length)."""
    total = 0
    for c in range(nslots.shape[0]):
        total += nslots[c]
    out = np.zeros(total + extra, dtype=np.int64)
    top = 0
    for c in range(nslots.shape[0]):
        n = nslots[c]
        if n == 0:
            slot_off[c] = -1
            slot_cap[c] = 0
            continue
        base = slot_off[c]
        for j in range(n):
            out[top + j] = slots[base + j]
        slot_off[c] = top
        slot_cap[c] = n
        top += n
    return out, top


def rebuild_out_synapses(a: TMArrays) -> None:
    """Rebuild every source cell's list of fed segments from the segment pool."""
    a.sc[SC_BLK_HIGH] = 0
    a.sc[SC_BLK_NFREE] = 0
    _rebuild_chains(a.seg_src, a.seg_perm, a.seg_n, a.sc[SC_SEG_HIGH], a.fp[FP_CONN], a.sc,
                    a.out_head, a.out_tail, a.out_cnt, a.blk, a.blk_next, a.blk_prev, a.blk_free)


@njit(cache=True)
def _rebuild_chains(seg_src: Int32s, seg_perm: Float32s, seg_n: Int32s, high: Int, conn: Real,
                    sc: Int64s, out_head: Int32s, out_tail: Int32s, out_cnt: Int32s, blk: Int32s,
                    blk_next: Int32s, blk_prev: Int32s, blk_free: Int32s) -> None:
    """The chains ``out_add`` builds for the synapses of segments ``0..high`` added in pool
    order, in blocks ``0..`` (``sc``'s block counters must be zero). Works on the arrays
    themselves: a kernel taking the whole TMArrays per synapse is ~100x slower."""
    _clear_chains(out_head, out_tail, out_cnt)
    for p in range(high):
        for i in range(seg_n[p]):
            out_add(sc, out_cnt, out_head, out_tail, blk, blk_next, blk_prev, blk_free,
                    seg_src[p, i], p, seg_perm[p, i] >= conn)
    _clear_block_ends(out_tail, out_cnt, blk)


@njit(cache=True)
def load_pool(seg_src: Int32s, seg_perm: Float32s, seg_n: Int32s, high: Int,
              cells: npt.NDArray[np.integer[Any]], cell_index: npt.NDArray[np.integer[Any]],
              values: Float32s, value_index: npt.NDArray[np.integer[Any]], conn: Real,
              sc: Int64s, out_head: Int32s, out_tail: Int32s, out_cnt: Int32s, blk: Int32s,
              blk_next: Int32s, blk_prev: Int32s, blk_free: Int32s) -> None:
    """Write the synapses of the rows ``0..high`` of the segment pool from indexed synapses
    (source ``cells[cell_index[k]]``, permanence ``values[value_index[k]]``, in pool order)
    and build the out-synapse chains (``sc``'s block counters must be zero). The entries of a
    row past its segment's end are left as they are: no kernel reads them.

    The chains hold what :func:`_rebuild_chains` gives (each source's segments in pool
    order), laid out by counting: each source's chain in consecutive blocks, in the order of
    ``cells``; a pass counting the synapses of each source and one writing the entries, with
    no per-synapse chain bookkeeping (a source cell listed twice in ``cells``, which a valid
    state never has, falls back to adding them one by one)."""
    _clear_chains(out_head, out_tail, out_cnt)
    n_used = cells.shape[0]
    pos = np.zeros(n_used, dtype=np.int64)
    k = 0
    for p in range(high):
        for i in range(seg_n[p]):
            u = cell_index[k]
            seg_src[p, i] = cells[u]
            seg_perm[p, i] = values[value_index[k]]
            pos[u] += 1
            k += 1
    b = 0
    for u in range(n_used):
        n = pos[u]
        if n == 0:
            continue
        c = cells[u]
        if out_cnt[c] != 0:  # listed twice
            _rebuild_chains(seg_src, seg_perm, seg_n, high, conn, sc, out_head, out_tail,
                            out_cnt, blk, blk_next, blk_prev, blk_free)
            return
        n_blocks = (n + BLOCK - 1) // BLOCK
        out_head[c] = b
        out_tail[c] = b + n_blocks - 1
        out_cnt[c] = n
        for j in range(n_blocks):
            blk_prev[b + j] = b + j - 1 if j > 0 else -1
            blk_next[b + j] = b + j + 1 if j < n_blocks - 1 else -1
        last = b + n_blocks - 1
        for j in range(n - (n_blocks - 1) * BLOCK, BLOCK):
            blk[last, j] = 0
        pos[u] = b * BLOCK
        b += n_blocks
    sc[SC_BLK_HIGH] = b
    entries = blk.reshape(-1)  # C-contiguous: a view (flat positions, no division)
    k = 0
    for p in range(high):
        e = 4 * p
        for i in range(seg_n[p]):
            u = cell_index[k]
            q = pos[u]
            pos[u] = q + 1
            entries[q] = e + (seg_perm[p, i] >= conn)
            k += 1


@njit(cache=True)
def _clear_chains(out_head: Int32s, out_tail: Int32s, out_cnt: Int32s) -> None:
    """Empty every source cell's chain."""
    out_head[:] = -1
    out_tail[:] = -1
    out_cnt[:] = 0


@njit(cache=True)
def _clear_block_ends(out_tail: Int32s, out_cnt: Int32s, blk: Int32s) -> None:
    """Zero the unused entries of each chain's last block (they may hold stale entries)."""
    for c in range(out_cnt.shape[0]):
        used = out_cnt[c] % BLOCK
        if used:
            tail = out_tail[c]
            for j in range(used, BLOCK):
                blk[tail, j] = 0


def room_check(a: TMArrays, n_active: int) -> tuple[int, int]:
    """Whether the pools need growing before a step with ``n_active`` input columns (bit 1)
    and whether the slot pool is worth compacting (bit 2), and the most active columns the
    step may replay; mirrors _tm_state.reserve."""
    flags, n_max = _room_check(a.ip, a.sc, a.lrn_len, a.seg_n, a.blk, a.slots, a.slot_cap,
                               a.q_cell, n_active)
    return int(flags), int(n_max)


@njit(cache=True)
def _room_check(ip: Int64s, sc: Int64s, lrn_len: Int32s, seg_n: Int32s, blk: Int32s, slots: Int64s,
                slot_cap: Int32s, q_cell: Int32s, n_active: Int) -> tuple[int, Int]:
    """:func:`room_check` on the arrays it reads (``a``'s of the same names)."""
    n_max = n_active
    for r in range(sc[SC_LRN_HN]):
        n_max = max(n_max, lrn_len[r])
    rounds = ip[IP_MAX_LRN_BT] + 2
    new_segs = rounds * n_max + 1
    new_blocks = (2 * rounds * n_max + 1) * ip[IP_W]
    new_slots = new_segs * 2 * max(4, ip[IP_MAX_SEGS])
    flags = 0
    if seg_n.shape[0] - sc[SC_SEG_HIGH] + sc[SC_SEG_NFREE] < new_segs:
        flags |= 1
    if blk.shape[0] - sc[SC_BLK_HIGH] + sc[SC_BLK_NFREE] < new_blocks:
        flags |= 1
    if slots.shape[0] - sc[SC_SLOT_TOP] < new_slots:
        flags |= 1
    if q_cell.shape[0] < sc[SC_QLEN] + rounds * ip[IP_NCOLS] + 1:
        flags |= 1
    if sc[SC_SLOT_TOP] > 65536 and sc[SC_NITER] % 256 == 0:
        used = 0
        for c in range(slot_cap.shape[0]):
            used += slot_cap[c]
        if sc[SC_SLOT_TOP] > 4 * used + 65536:
            flags |= 2
    return flags, n_max


def count_synapses(a: TMArrays) -> int:
    """Number of synapses on live segments."""
    return int(a.seg_n[:int(a.sc[SC_SEG_HIGH])].sum(dtype=np.int64))


def list_orphans(a: TMArrays) -> Int32s:
    """(source cell, segment) of every orphan synapse (see ``out_mark_orphan``), by source
    cell and then in chain order."""
    return _list_orphans(a.out_cnt, a.out_head, a.blk, a.blk_next, a.blk_prev,
                         a.sc[SC_BLK_HIGH], a.seg_src, a.seg_n)


@njit(cache=True)
def _list_orphans(out_cnt: Int32s, out_head: Int32s, blk: Int32s, blk_next: Int32s,
                  blk_prev: Int32s, blk_high: Int, seg_src: Int32s, seg_n: Int32s) -> Int32s:
    """:func:`list_orphans` on the arrays it reads (``a``'s of the same names). Orphans are
    rare and walking every chain is slow (a cache miss per block): the used blocks are scanned
    in memory order for flagged entries (free blocks and the unused ends of blocks may hold
    stale ones), and the chain holding a flagged block is looked for among the chains of the
    sources of the entry's segment (all chains are walked only if it is not there)."""
    n_flagged = 0
    for b in range(blk_high):
        for j in range(BLOCK):
            if blk[b, j] & 2:
                n_flagged += 1
    keys = np.empty(n_flagged, dtype=np.int64)
    entries = np.empty(n_flagged, dtype=np.int32)
    k = 0
    for b in range(blk_high):
        for j in range(BLOCK):
            e = blk[b, j]
            if e & 2:
                src, pos = _chain_of(b, e >> 2, out_cnt, out_head, blk_next, blk_prev,
                                     seg_src, seg_n)
                if src < 0:
                    return _list_flagged(out_cnt, out_head, blk, blk_next, blk_high)
                if pos + j < out_cnt[src]:
                    keys[k] = np.int64(src) * (np.int64(1) << 32) + pos + j
                    entries[k] = e
                    k += 1
    order = np.argsort(keys[:k])
    out = np.empty((k, 2), dtype=np.int32)
    for i in range(k):
        out[i, 0] = keys[order[i]] >> 32
        out[i, 1] = entries[order[i]] >> 2
    return out


@njit(cache=True)
def _chain_of(b: Int, p: Int, out_cnt: Int32s, out_head: Int32s, blk_next: Int32s,
              blk_prev: Int32s, seg_src: Int32s, seg_n: Int32s) -> tuple[Int, Int]:
    """(source cell, chain position of its first entry) of block ``b`` if it is in the chain
    of a source of segment ``p``, else (-1, 0): back to the first block of its chain, then
    forward from the chain head of a source whose head it is, to check the way back."""
    if p < 0 or p >= seg_n.shape[0]:
        return -1, 0
    head = b
    steps = 0
    while blk_prev[head] >= 0 and steps < blk_prev.shape[0]:
        head = blk_prev[head]
        steps += 1
    for i in range(seg_n[p]):
        src = seg_src[p, i]
        if out_head[src] != head or out_cnt[src] <= steps * BLOCK:
            continue
        c = head
        for _ in range(steps):
            c = blk_next[c]
        if c == b:
            return src, steps * BLOCK
    return -1, 0


@njit(cache=True)
def _list_flagged(out_cnt: Int32s, out_head: Int32s, blk: Int32s, blk_next: Int32s,
                  blk_high: Int) -> Int32s:
    """:func:`list_orphans` walking every entry of every chain."""
    out = np.empty((blk_high * BLOCK, 2), dtype=np.int32)
    k = 0
    for src in range(out_cnt.shape[0]):
        remaining = out_cnt[src]
        b = out_head[src]
        while remaining > 0:
            for j in range(min(BLOCK, remaining)):
                e = blk[b, j]
                if e & 2:
                    out[k, 0] = src
                    out[k, 1] = e >> 2
                    k += 1
            remaining -= BLOCK
            b = blk_next[b]
    return out[:k]


def mark_orphans(a: TMArrays, orphans: Int32s) -> None:
    """Flag the listed (source cell, segment) out-synapses as orphans again after loading."""
    _mark_orphans(a.out_cnt, a.out_head, a.blk, a.blk_next, orphans)


@njit(cache=True)
def _mark_orphans(out_cnt: Int32s, out_head: Int32s, blk: Int32s, blk_next: Int32s,
                  orphans: Int32s) -> None:
    """:func:`mark_orphans` on the out-synapse chains (``a``'s arrays of the same names)."""
    for i in range(orphans.shape[0]):
        out_mark_orphan(out_cnt, out_head, blk, blk_next, orphans[i, 0],
                        np.int64(orphans[i, 1]))


@njit(cache=True)
def segment_owners(nslots: Int64s, slots: Int64s, high: Int) -> tuple[Int32s, Int32s, int]:
    """(cell, slot) of every segment ``0..high`` (-1 for a free one) read from the cells' slot
    lists, and the number of live segments found (-1 if a segment is listed twice)."""
    seg_cell = np.full(high, -1, dtype=np.int32)
    seg_slot = np.full(high, -1, dtype=np.int32)
    live = 0
    pos = 0
    for c in range(nslots.shape[0]):
        for j in range(nslots[c]):
            p = slots[pos + j]
            if p >= 0:
                if p >= high or seg_cell[p] >= 0:
                    return seg_cell, seg_slot, -1
                seg_cell[p] = c
                seg_slot[p] = j
                live += 1
        pos += nslots[c]
    return seg_cell, seg_slot, live


@njit(cache=True)
def load_slots(saved_nslots: npt.NDArray[np.integer[Any]],
               saved_slots: npt.NDArray[np.integer[Any]], high: Int, slot_off: Int64s,
               slot_cap: Int32s, nslots: Int32s, slots: Int64s, seg_cell: Int32s,
               seg_slot: Int32s) -> None:
    """Write the cells' slot lists (compact: each list's capacity is its length) and every
    segment's cell and slot (-1 for a free segment among ``0..high``) from the saved slot
    counts and entries (see :func:`segment_owners`)."""
    for p in range(high):
        seg_cell[p] = -1
        seg_slot[p] = -1
    pos = 0
    for c in range(saved_nslots.shape[0]):
        n = saved_nslots[c]
        nslots[c] = n
        slot_cap[c] = n
        slot_off[c] = pos if n > 0 else -1
        for j in range(n):
            p = saved_slots[pos + j]
            slots[pos + j] = p
            if p >= 0:
                seg_cell[p] = c
                seg_slot[p] = j
        pos += n

