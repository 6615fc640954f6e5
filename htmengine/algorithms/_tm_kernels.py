"""numba kernels of the backtracking TM: cell states, segments, synapses, segment updates.

These follow nupic.core's ``Cells4``/``Segment``/``Cell`` semantics (see backtracking_tm.py
for the overview).  The functions taking ``a`` get a ``TMRef`` to the ``TMArrays`` (see
_tm_ref.py; ``adapt_segment`` also takes the tuple itself, as tests call it); the out-synapse
chains are in _tm_outsyn.py.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from htmengine.algorithms._tm_outsyn import out_add, out_mark_orphan, out_remove, out_set_connected
from htmengine.algorithms._tm_ref import TMRef, njit_borrowed, njit_inner
from htmengine.algorithms._tm_state import (
    BLOCK,
    FP_CONN,
    FP_DEC,
    FP_INC,
    FP_INIT,
    FP_MAX,
    IP_MAX_SYNS,
    MINUS_ONE,
    NO,
    SC_NLRN,
    SC_REL_CTR,
    SC_SEG_HIGH,
    SC_SEG_NFREE,
    SC_SLOT_TOP,
    YES,
    ZERO,
    Flag,
    Float32s,
    Int,
    Int32s,
    Int64s,
    TMArrays,
    UInt8s,
)

# Segment duty-cycle tiers and their moving-average rates (Segment.hpp).
DUTY_TIERS = np.array([0, 100, 320, 1000, 3200, 10000, 32000, 100000, 320000], dtype=np.int64)
DUTY_ALPHAS = np.array([0.0, 0.0032, 0.0010, 0.00032, 0.00010, 0.000032, 0.000010,
                        0.0000032, 0.0000010], dtype=np.float32)


# ----------------------------------------------------------------------------- cell states
# The small helpers below take the arrays they use, not the ``TMArrays`` tuple: numba
# increments and decrements the reference count of every array of a tuple argument on each
# call (about 50 atomic operations), which made these per-cell and per-synapse calls cost
# more than the work they do.
@njit_borrowed
def st_clear(flags: UInt8s, lst: Int32s, cnt: Int64s, k: Int) -> None:
    """Turn every cell of state ``k`` off (``flags``/``lst``/``cnt``: ``a.st_flags``,
    ``a.st_list``, ``a.st_cnt``)."""
    for i in range(cnt[k]):
        flags[k, lst[k, i]] = 0
    cnt[k] = 0


@njit_borrowed
def st_set(flags: UInt8s, lst: Int32s, cnt: Int64s, k: Int, cell: Int) -> None:
    """Turn ``cell`` on in state ``k``."""
    if flags[k, cell] == 0:
        flags[k, cell] = 1
        lst[k, cnt[k]] = cell
        cnt[k] += 1


@njit_borrowed
def st_copy(flags: UInt8s, lst: Int32s, cnt: Int64s, dst: Int, src: Int) -> None:
    """State ``dst`` := state ``src``."""
    st_clear(flags, lst, cnt, dst)
    n = cnt[src]
    for i in range(n):
        cell = lst[src, i]
        lst[dst, i] = cell
        flags[dst, cell] = 1
    cnt[dst] = n


# ----------------------------------------------------------------------------- duty cycle
@njit_borrowed
def duty_cycle(seg_pos: Int64s, seg_dc: Float32s, seg_dc_iter: Int64s, p: Int, iteration: Int,
               active: Flag, read_only: Flag) -> np.float32:
    """``Segment::dutyCycle``: positive-activation duty cycle of segment ``p`` (float32);
    ``seg_pos``/``seg_dc``/``seg_dc_iter`` are the pool's arrays of that name."""
    if iteration <= DUTY_TIERS[1]:
        dc = np.float32(seg_pos[p]) / np.float32(iteration)
        if not read_only:
            seg_dc_iter[p] = iteration
            seg_dc[p] = dc
        return dc
    age = iteration - seg_dc_iter[p]
    if age == 0 and not active:
        kept: np.float32 = seg_dc[p]
        return kept
    alpha = np.float32(0.0)
    for tier in range(DUTY_TIERS.shape[0] - 1, 0, -1):
        if iteration > DUTY_TIERS[tier]:
            alpha = DUTY_ALPHAS[tier]
            break
    dc = np.float32(math.pow(1.0 - np.float64(alpha), np.float64(age))
                    * np.float64(seg_dc[p]))
    if active:
        dc = np.float32(dc + alpha)
    if not read_only:
        seg_dc[p] = dc
        seg_dc_iter[p] = iteration
    return dc


@njit_borrowed
def forward_propagate(a: TMRef, k: Int, bank: Int, ts_idx: Int, tc_idx: Int,
                      with_orphans: Flag) -> None:
    """Count, for every segment, the synapses (connected or not) whose source cell is on in
    state ``k`` (``a.act[bank]``), the connected ones among them (``a.act_conn[bank]``) and the
    per-cell maximum of the first (``a.cell_act[bank]``); the touched segments/cells are
    listed for the next reset.  Orphan synapses (see :func:`out_mark_orphan`) count in
    ``act`` only ``with_orphans`` (Cells4 reading the segment itself), and always in
    ``act_conn`` (``Cells4::isActive`` reads the segment)."""
    act = a.act[bank]
    act_conn = a.act_conn[bank]
    cell_act = a.cell_act[bank]
    ts = a.touched_segs[bank]
    tc = a.touched_cells[bank]
    for i in range(a.sc[ts_idx]):
        act[ts[i]] = 0
        act_conn[ts[i]] = 0
    for i in range(a.sc[tc_idx]):
        cell_act[tc[i]] = 0
    nts = 0
    for i in range(a.st_cnt[k]):
        src = a.st_list[k, i]
        remaining = a.out_cnt[src]
        b = a.out_head[src]
        while remaining > 0:
            m = min(BLOCK, remaining)
            for j in range(m):
                e = a.blk[b, j]
                p = e >> 2
                counted = with_orphans or (e & 2) == 0
                if counted or (e & 1):
                    if act[p] == 0 and act_conn[p] == 0:
                        ts[nts] = p
                        nts += 1
                    if counted:
                        act[p] += 1
                    act_conn[p] += e & 1
            remaining -= m
            b = a.blk_next[b]
    ntc = 0
    for i in range(nts):
        p = ts[i]
        v = act[p]
        cell = a.seg_cell[p]
        if v > cell_act[cell]:
            if cell_act[cell] == 0:
                tc[ntc] = cell
                ntc += 1
            cell_act[cell] = v
    a.sc[ts_idx] = nts
    a.sc[tc_idx] = ntc


# ----------------------------------------------------------------------------- segment slots
@njit_borrowed
def slot_entry(slots: Int64s, slot_off: Int64s, cell: Int, slot: Int) -> np.int64:
    """Pool id in ``slot`` of ``cell`` (negative when that slot is empty); ``slots`` and
    ``slot_off`` are ``a.slots`` and ``a.slot_off``."""
    entry: np.int64 = slots[slot_off[cell] + slot]
    return entry


@njit_borrowed
def release_segment(a: TMRef, cell: Int, slot: Int) -> None:
    """``Cell::releaseSegment``: empty the slot (it goes on top of the cell's free stack).
    Out-synapses must already have been removed."""
    base = a.slot_off[cell]
    p = a.slots[base + slot]
    if p < 0:
        return
    a.seg_n[p] = 0
    a.seg_nconn[p] = 0
    a.seg_cell[p] = -1
    a.seg_slot[p] = -1
    a.seg_free[a.sc[SC_SEG_NFREE]] = p
    a.sc[SC_SEG_NFREE] += 1
    a.slots[base + slot] = -(a.sc[SC_REL_CTR] + 1)
    a.sc[SC_REL_CTR] += 1


@njit_borrowed
def _free_slot(a: TMRef, cell: Int) -> Int:
    """``Cell::getFreeSegment`` slot choice: the last released empty slot, else a new one."""
    base = a.slot_off[cell]
    n: Int = a.nslots[cell]
    best: Int = MINUS_ONE
    best_val = np.int64(0)
    for j in range(n):
        v = a.slots[base + j]
        if v < best_val:
            best_val = v
            best = j
    if best >= 0:
        return best
    if n == a.slot_cap[cell]:
        new_cap = 4 if n == 0 else 2 * n
        new_base = a.sc[SC_SLOT_TOP]
        a.sc[SC_SLOT_TOP] += new_cap
        for j in range(n):
            a.slots[new_base + j] = a.slots[base + j]
        a.slot_off[cell] = new_base
        a.slot_cap[cell] = new_cap
        base = new_base
    a.nslots[cell] = n + 1
    a.slots[base + n] = -1
    return n


@njit_borrowed
def new_segment(a: TMRef, cell: Int, q: Int) -> Int:
    """Create a segment on ``cell`` from pending update ``q`` (adaptSegment, new-segment branch).
    Returns the slot used."""
    slot = _free_slot(a, cell)
    if a.sc[SC_SEG_NFREE] > 0:
        a.sc[SC_SEG_NFREE] -= 1
        p = a.seg_free[a.sc[SC_SEG_NFREE]]
    else:
        p = a.sc[SC_SEG_HIGH]
        a.sc[SC_SEG_HIGH] += 1
    a.slots[a.slot_off[cell] + slot] = p
    iteration = a.sc[SC_NLRN]
    n = a.q_n[q]
    init = a.fp[FP_INIT]
    nconn = 0
    for i in range(n):
        a.seg_src[p, i] = a.q_syn[q, i]
        a.seg_perm[p, i] = init
        if init >= a.fp[FP_CONN]:
            nconn += 1
    a.seg_n[p] = n
    a.seg_nconn[p] = nconn
    a.seg_cell[p] = cell
    a.seg_slot[p] = slot
    a.seg_seq[p] = a.q_seq[q]
    a.seg_dc[p] = np.float32(1.0 / iteration)
    a.seg_dc_iter[p] = iteration
    a.seg_last_active[p] = iteration
    a.seg_pos[p] = 1
    a.seg_total[p] = 1
    for i in range(n):
        out_add(a.sc, a.out_cnt, a.out_head, a.out_tail, a.blk, a.blk_next, a.blk_prev, a.blk_free, a.q_syn[q, i], p,
                init >= a.fp[FP_CONN])
    return slot


# ----------------------------------------------------------------------------- adaptSegment
@njit_borrowed
def _update_perm(seg_perm: Float32s, seg_nconn: Int32s, seg_src: Int32s, fp: Float32s,
                 out_cnt: Int32s, out_head: Int32s, blk: Int32s, blk_next: Int32s, p: Int, i: Int,
                 delta: np.float32) -> bool:
    """Add ``delta`` to synapse ``i`` of ``p`` (capped at permMax); True if it must go."""
    old = seg_perm[p, i]
    new = min(np.float32(old + delta), fp[FP_MAX])
    seg_perm[p, i] = new
    conn = fp[FP_CONN]
    was = old >= conn
    now = new >= conn
    seg_nconn[p] += (1 if now else 0) - (1 if was else 0)
    if new <= 0:
        return True  # removed by the caller (with its out-synapse entry)
    if was != now:
        out_set_connected(out_cnt, out_head, blk, blk_next, seg_src[p, i], p, now)
    return False


@njit_borrowed
def _mark_in_update(a: TMRef, p: Int, q: Int, in_upd: UInt8s) -> None:
    """in_upd[i] = synapse i of ``p`` has its source in update ``q`` (both sorted)."""
    n = a.seg_n[p]
    m = a.q_n[q]
    j = 0
    for i in range(n):
        src = a.seg_src[p, i]
        while j < m and a.q_syn[q, j] < src:
            j += 1
        in_upd[i] = 1 if (j < m and a.q_syn[q, j] == src) else 0


@njit_borrowed
def _remove_marked(a: TMRef, p: Int, dead: UInt8s, removed: Int32s, n_removed: Int) -> Int:
    """Drop synapses of ``p`` flagged in ``dead`` (keeping order); log their sources."""
    n = a.seg_n[p]
    w = 0
    for i in range(n):
        if dead[i]:
            removed[n_removed] = a.seg_src[p, i]
            n_removed += 1
        else:
            a.seg_src[p, w] = a.seg_src[p, i]
            a.seg_perm[p, w] = a.seg_perm[p, i]
            w += 1
    a.seg_n[p] = w
    return n_removed


@njit_borrowed
def _has_source(seg_src: Int32s, seg_n: Int32s, p: Int, src: Int) -> bool:
    """True if segment ``p`` has a synapse from ``src`` (sources are sorted)."""
    lo = 0
    hi = seg_n[p]
    while lo < hi:
        mid = (lo + hi) // 2
        if seg_src[p, mid] < src:
            lo = mid + 1
        else:
            hi = mid
    found: bool = lo < seg_n[p] and seg_src[p, lo] == src
    return found


@njit_inner
def _free_n_synapses(a: TMRef, p: Int, n_free: Int, was_active: UInt8s, stale_src: Int32s,
                     stale_perm: Float32s, dead: UInt8s, removed: Int32s, n_removed: Int) -> Int:
    """``Segment::freeNSynapses`` as in nupic.core 0.4.10.

    Candidates are the indices the synapses had *before* the decrement pass pruned some:
    inactive ones first, by increasing permanence, then (if needed) active ones with permMax
    added to their permanence; stable sort.  Each index is read on the current (compacted)
    segment, or, past its end, in the memory the compaction left behind (``stale_*``).  The
    source read there is logged as removed (its out-synapse gets erased), but only indices
    inside the current segment actually remove a synapse."""
    n = a.seg_n[p]
    n0 = was_active.shape[0]
    cand_idx = np.empty(n0, dtype=np.int64)
    cand_key = np.empty(n0, dtype=np.float32)
    nc = 0
    for i in range(n0):
        if was_active[i] == 0:
            cand_idx[nc] = i
            cand_key[nc] = a.seg_perm[p, i] if i < n else stale_perm[i]
            nc += 1
    if nc < n_free:
        pmax = a.fp[FP_MAX]
        for i in range(n0):
            if was_active[i]:
                cand_idx[nc] = i
                perm = a.seg_perm[p, i] if i < n else stale_perm[i]
                cand_key[nc] = np.float32(perm + pmax)
                nc += 1
    # stable insertion sort by key
    for i in range(1, nc):
        ki = cand_key[i]
        ii = cand_idx[i]
        j = i - 1
        while j >= 0 and cand_key[j] > ki:
            cand_key[j + 1] = cand_key[j]
            cand_idx[j + 1] = cand_idx[j]
            j -= 1
        cand_key[j + 1] = ki
        cand_idx[j + 1] = ii
    for i in range(n):
        dead[i] = 0
    for i in range(min(n_free, nc)):
        idx = cand_idx[i]
        if idx < n:
            dead[idx] = 1
        else:
            removed[n_removed] = stale_src[idx]
            n_removed += 1
    return _remove_marked(a, p, dead, removed, n_removed)


@njit_borrowed
def _free_weakest(a: TMRef, p: Int, n_free: Int, dead: UInt8s, removed: Int32s,
                  n_removed: Int) -> Int:
    """Remove the ``n_free`` weakest synapses of ``p`` (first index wins ties)."""
    n = a.seg_n[p]
    for i in range(n):
        dead[i] = 0
    for _ in range(n_free):
        best: Int = MINUS_ONE
        for i in range(n):
            if dead[i] == 0 and (best < 0 or a.seg_perm[p, i] < a.seg_perm[p, best]):
                best = i
        dead[best] = 1
    return _remove_marked(a, p, dead, removed, n_removed)


@njit(cache=True)
def adapt_segment(a: TMRef | TMArrays, q: Int) -> None:
    """``Cells4::adaptSegment`` for pending update ``q``."""
    cell = np.int64(a.q_cell[q])  # int64 like every caller's cell/slot: one specialization
    slot = np.int64(a.q_seg[q])
    if slot < 0:
        new_segment(a, cell, q)
        return
    p = slot_entry(a.slots, a.slot_off, cell, slot)
    if p < 0:
        return  # the segment was released after this update was queued
    iteration = a.sc[SC_NLRN]
    a.seg_last_active[p] = iteration
    a.seg_pos[p] += 1
    duty_cycle(a.seg_pos, a.seg_dc, a.seg_dc_iter, p, iteration, YES, NO)

    width = a.seg_src.shape[1]
    in_upd = np.zeros(width, dtype=np.uint8)
    dead = np.zeros(width, dtype=np.uint8)
    removed = np.empty(2 * width + a.q_syn.shape[1], dtype=np.int32)
    n_removed: Int = ZERO

    # decrement synapses whose source is not in the update
    _mark_in_update(a, p, q, in_upd)
    n0 = a.seg_n[p]
    # nupic.core 0.4.10 lists the inactive/active synapses by their index on the segment
    # *before* pruning and uses those stale indices in freeNSynapses (fixed in NUP-2324,
    # 2017): the segment as it was after the decrement pass (compacted or not) is kept here.
    was_active = in_upd[:n0].copy()
    neg_dec = -a.fp[FP_DEC]
    any_dead = False
    for i in range(n0):
        dead[i] = 0
        if in_upd[i] == 0 and _update_perm(a.seg_perm, a.seg_nconn, a.seg_src, a.fp, a.out_cnt,
                                           a.out_head, a.blk, a.blk_next, p, i, neg_dec):
            dead[i] = 1
            any_dead = True
    stale_src = a.seg_src[p, :n0].copy()
    stale_perm = a.seg_perm[p, :n0].copy()
    if any_dead:
        n_removed = _remove_marked(a, p, dead, removed, n_removed)
        _mark_in_update(a, p, q, in_upd)
    # increment synapses whose source is in the update
    inc = a.fp[FP_INC]
    for i in range(a.seg_n[p]):
        if in_upd[i]:
            _update_perm(a.seg_perm, a.seg_nconn, a.seg_src, a.fp, a.out_cnt, a.out_head,
                         a.blk, a.blk_next, p, i, inc)
    # sources of the update not yet on the segment (computed before any freeing)
    n = a.seg_n[p]
    n_new = 0
    new_src = np.empty(a.q_n[q], dtype=np.int32)
    i = 0
    for j in range(a.q_n[q]):
        src = a.q_syn[q, j]
        while i < n and a.seg_src[p, i] < src:
            i += 1
        if not (i < n and a.seg_src[p, i] == src):
            new_src[n_new] = src
            n_new += 1
    max_syns = a.ip[IP_MAX_SYNS]
    n = a.seg_n[p]
    if max_syns > 0 and n_new + n > max_syns:
        n_removed = _free_n_synapses(a, p, n_new + n - max_syns, was_active, stale_src,
                                     stale_perm, dead, removed, n_removed)
    n = a.seg_n[p]
    if n + n_new > width:  # cannot happen with Cells4's sizes; keeps the arrays safe
        n_removed = _free_weakest(a, p, n + n_new - width, dead, removed, n_removed)
    # add the new synapses, merging to keep sources sorted
    if n_new > 0:
        n = a.seg_n[p]
        init = a.fp[FP_INIT]
        i = n - 1
        j = n_new - 1
        w = n + n_new - 1
        while j >= 0:
            if i >= 0 and a.seg_src[p, i] > new_src[j]:
                a.seg_src[p, w] = a.seg_src[p, i]
                a.seg_perm[p, w] = a.seg_perm[p, i]
                i -= 1
            else:
                a.seg_src[p, w] = new_src[j]
                a.seg_perm[p, w] = init
                j -= 1
            w -= 1
        a.seg_n[p] = n + n_new
        if init >= a.fp[FP_CONN]:
            a.seg_nconn[p] += n_new
        for j in range(n_new):
            out_add(a.sc, a.out_cnt, a.out_head, a.out_tail, a.blk, a.blk_next, a.blk_prev, a.blk_free, new_src[j], p,
                    init >= a.fp[FP_CONN])
    if n_removed > 0:
        for i in range(n_removed):
            if _has_source(a.seg_src, a.seg_n, p, removed[i]):
                out_mark_orphan(a.out_cnt, a.out_head, a.blk, a.blk_next, removed[i], p)
            else:
                out_remove(a.sc, a.out_cnt, a.out_head, a.out_tail, a.blk, a.blk_next, a.blk_prev, a.blk_free, removed[i], p)
        conn = a.fp[FP_CONN]
        nconn = 0
        for i in range(a.seg_n[p]):
            if a.seg_perm[p, i] >= conn:
                nconn += 1
        a.seg_nconn[p] = nconn
    if a.seg_n[p] == 0:
        release_segment(a, cell, slot)
