"""numba kernels of the backtracking TM: learning state (Cells4 learnPhase1/2, learnBacktrack)."""

from __future__ import annotations

import numpy as np

from htmengine.algorithms._tm_kernels import (
    adapt_segment,
    duty_cycle,
    forward_propagate,
    release_segment,
    slot_entry,
    st_clear,
    st_copy,
    st_set,
)
from htmengine.algorithms._tm_outsyn import out_remove
from htmengine.algorithms._tm_ref import TMRef, njit_borrowed, njit_inline, njit_inner
from htmengine.algorithms._tm_state import (
    BANK_0,
    BANK_1,
    IP_ACT_THR,
    IP_CPC,
    IP_DO_POOLING,
    IP_MAX_LRN_BT,
    IP_MAX_SEGS,
    IP_MAX_SEQ_LEN,
    IP_MIN_THR,
    IP_NEW_SYN,
    IP_PAM_LEN,
    IP_SEG_UPD_VALID,
    LRN_ACT_T,
    LRN_ACT_T1,
    LRN_PRED_T,
    LRN_PRED_T1,
    MINUS_ONE,
    NO,
    ONE,
    SC_LRN_HN,
    SC_LSEQ,
    SC_NLRN,
    SC_NTC0,
    SC_NTC1,
    SC_NTS0,
    SC_NTS1,
    SC_PAM,
    SC_QLEN,
    SC_RESET,
    YES,
    ZERO,
    Flag,
    Int,
    Int32s,
    UInt8s,
)
from htmengine.algorithms.nupic_random import rng_sample, rng_uint32


# ----------------------------------------------------------------------------- update queue
@njit_borrowed
def queue_remove(a: TMRef, dead: UInt8s) -> None:
    """Remove the queued updates flagged in ``dead`` keeping the order of the others."""
    n = a.sc[SC_QLEN]
    w = 0
    for i in range(n):
        if dead[i]:
            continue
        if w != i:
            a.q_cell[w] = a.q_cell[i]
            a.q_seg[w] = a.q_seg[i]
            a.q_seq[w] = a.q_seq[i]
            a.q_time[w] = a.q_time[i]
            m = a.q_n[i]
            a.q_n[w] = m
            for j in range(m):
                a.q_syn[w, j] = a.q_syn[i, j]
        w += 1
    a.sc[SC_QLEN] = w


@njit_inner
def clean_updates_list(a: TMRef, cell: Int, slot: Int) -> None:
    """Drop every queued update aimed at (``cell``, ``slot``)."""
    n = a.sc[SC_QLEN]
    dead = np.zeros(n, dtype=np.uint8)
    found = False
    for i in range(n):
        if a.q_cell[i] == cell and a.q_seg[i] == slot:
            dead[i] = 1
            found = True
    if found:
        queue_remove(a, dead)


@njit_inner
def free_segment_with_synapses(a: TMRef, cell: Int, slot: Int) -> None:
    """Remove a whole segment: its out-synapses, pending updates and slot."""
    p = slot_entry(a.slots, a.slot_off, cell, slot)
    for i in range(a.seg_n[p]):
        out_remove(a.sc, a.out_cnt, a.out_head, a.out_tail, a.blk, a.blk_next, a.blk_prev,
                   a.blk_free, a.seg_src[p, i], p)
    clean_updates_list(a, cell, slot)
    release_segment(a, cell, slot)


# ----------------------------------------------------------------------------- updates
@njit_inner
def choose_cells_to_learn_from(a: TMRef, p: Int, n_add: Int, on: Int32s, q: Int, n: Int) -> Int:
    """``Cells4::chooseCellsToLearnFrom``: append up to ``n_add`` of the cells ``on`` (the
    sorted cells on in the learning state, minus those already on segment ``p`` if ``p`` >= 0)
    to update row ``q`` holding ``n`` sources; returns the new count (row sorted)."""
    cnt = on.shape[0]
    if p >= 0:
        pruned = np.empty(cnt, dtype=np.int32)
        m = 0
        ns = a.seg_n[p]
        j = 0
        for i in range(cnt):
            c = on[i]
            while j < ns and a.seg_src[p, j] < c:
                j += 1
            if not (j < ns and a.seg_src[p, j] == c):
                pruned[m] = c
                m += 1
        pruned = pruned[:m]
    else:
        pruned = on
    nbr = pruned.shape[0]
    if nbr == 0:
        return n
    if nbr <= n_add:
        for i in range(nbr):
            a.q_syn[q, n + i] = pruned[i]
        n += nbr
    elif n_add == 1:
        a.q_syn[q, n] = pruned[rng_uint32(a.rng_state, a.rng_ptrs, nbr)]
        n += 1
    else:
        chosen = rng_sample(a.rng_state, a.rng_ptrs, pruned, n_add)
        for i in range(n_add):
            a.q_syn[q, n + i] = chosen[i]
        n += n_add
    ordered = np.sort(a.q_syn[q, :n].copy())
    for i in range(n):  # (a slice assignment compiles numba's shape-mismatch message code)
        a.q_syn[q, i] = ordered[i]
    return n


@njit_inner
def compute_update(a: TMRef, cell: Int, slot: Int, k: Int, sequence: Flag, new_synapses: Flag,
                   on_sorted: Int32s) -> bool:
    """``Cells4::computeUpdate``: queue an update for (``cell``, ``slot``) (slot -1 = new
    segment) from the cells on in state ``k`` (``on_sorted``: those cells, sorted).  Returns
    False if it would be empty."""
    q = a.sc[SC_QLEN]
    n: Int = ZERO
    p = MINUS_ONE
    if slot >= 0:
        p = slot_entry(a.slots, a.slot_off, cell, slot)
        for i in range(a.seg_n[p]):
            src = a.seg_src[p, i]
            if a.st_flags[k, src]:
                a.q_syn[q, n] = src
                n += 1
    if new_synapses:
        n_add = a.ip[IP_NEW_SYN] - n
        if n_add > 0:
            n = choose_cells_to_learn_from(a, p, n_add, on_sorted, q, n)
    if n == 0:
        return False
    a.q_cell[q] = cell
    a.q_seg[q] = slot
    a.q_seq[q] = 1 if sequence else 0
    a.q_time[q] = a.sc[SC_NLRN]
    a.q_n[q] = n
    a.sc[SC_QLEN] = q + 1
    return True


@njit_inline
def process_segment_updates(a: TMRef, col_flags: UInt8s) -> None:
    """``Cells4::processSegmentUpdates``: apply queued updates of columns with bottom-up input
    (``col_flags``), drop expired ones and (unless pooling) the others."""
    n = a.sc[SC_QLEN]
    if n == 0:
        return
    dead = np.zeros(n, dtype=np.uint8)
    cpc = a.ip[IP_CPC]
    now = a.sc[SC_NLRN]
    for i in range(n):
        if now - a.q_time[i] > a.ip[IP_SEG_UPD_VALID]:
            dead[i] = 1
        else:
            cell = a.q_cell[i]
            if col_flags[cell // cpc] == 1:
                adapt_segment(a, i)
                dead[i] = 1
            elif not (a.ip[IP_DO_POOLING] != 0 and a.st_flags[LRN_PRED_T, cell] != 0):
                dead[i] = 1
    queue_remove(a, dead)


# ----------------------------------------------------------------------------- cell choice
@njit_inner
def get_cell_for_new_segment(a: TMRef, col: Int) -> Int:
    """``Cells4::getCellForNewSegment``: a random non-start cell below the segment limit, else
    free the column's segment with the lowest duty cycle and use its cell."""
    cpc = a.ip[IP_CPC]
    lo = col * cpc + 1
    hi = col * cpc + cpc - 1
    max_segs = a.ip[IP_MAX_SEGS]
    cands = np.empty(cpc, dtype=np.int64)
    nc = ZERO
    for i in range(lo, hi + 1):
        if a.nslots[i] < max_segs:
            cands[nc] = i
            nc += 1
    if nc > 0:
        chosen: np.int64 = cands[rng_uint32(a.rng_state, a.rng_ptrs, nc)]
        return chosen
    best_cell: Int = MINUS_ONE
    best_slot: Int = MINUS_ONE
    best_dc = np.float32(1.0)
    first_cell: Int = MINUS_ONE
    first_slot: Int = MINUS_ONE
    now = a.sc[SC_NLRN]
    for i in range(lo, hi + 1):
        for j in range(a.nslots[i]):
            p = slot_entry(a.slots, a.slot_off, i, j)
            if p < 0:
                continue
            if first_cell < 0:
                first_cell = i
                first_slot = j
            dc = duty_cycle(a.seg_pos, a.seg_dc, a.seg_dc_iter, p, now, NO, NO)
            if dc < best_dc:
                best_cell = i
                best_dc = dc
                best_slot = j
    if best_cell < 0:  # every duty cycle is 1.0 (undefined in Cells4): take the first
        best_cell = first_cell
        best_slot = first_slot
    free_segment_with_synapses(a, best_cell, best_slot)
    return best_cell


@njit_borrowed
def best_matching_cell_t1(a: TMRef, col: Int, min_threshold: Int) -> tuple[Int, Int]:
    """``Cells4::getBestMatchingCellT1`` using the activities in bank 1 (all synapses counted
    from the learning state at t-1).  Returns (cell, slot) or (-1, -1)."""
    cpc = a.ip[IP_CPC]
    act = a.act[1]
    best_cell: Int = MINUS_ONE
    best_slot: Int = MINUS_ONE
    best_act = min_threshold
    for i in range(col * cpc, col * cpc + cpc):
        if a.cell_act[1, i] < best_act:
            continue
        max_act = 0
        max_slot = 0
        for j in range(a.nslots[i]):
            p = slot_entry(a.slots, a.slot_off, i, j)
            if p < 0:
                continue
            v = act[p]
            if v > max_act:
                max_act = v
                max_slot = j
        if max_act >= best_act:
            best_act = max_act
            best_slot = max_slot
            best_cell = i
    if best_cell < 0:
        return -1, -1
    return best_cell, best_slot


# ----------------------------------------------------------------------------- phases
@njit_inner
def learn_phase1(a: TMRef, cols: Int32s, n_cols_active: Int, read_only: Flag) -> Flag:
    """``Cells4::learnPhase1``: learning active state from the learn-predicted state at t-1;
    unpredicted columns reinforce their best matching sequence segment or grow a new one.
    Returns True when fewer than half the columns were unpredicted."""
    st_clear(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T)
    cpc = a.ip[IP_CPC]
    n_unpredicted = 0
    t1_done = False
    on_t1 = np.empty(0, dtype=np.int32)
    for ci in range(n_cols_active):
        col = cols[ci]
        cell0 = col * cpc
        n_pred = 0
        pred = 0
        for j in range(cpc):
            if a.st_flags[LRN_PRED_T1, cell0 + j]:
                n_pred += 1
                pred = j
        if n_pred == 1:
            st_set(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T, cell0 + pred)
            continue
        n_unpredicted += 1
        if read_only:
            continue
        if not t1_done:
            # segments of the columns still to come are not modified before their turn,
            # so one propagation serves the whole loop
            forward_propagate(a, LRN_ACT_T1, BANK_1, SC_NTS1, SC_NTC1, YES)
            on_t1 = np.sort(a.st_list[LRN_ACT_T1, :a.st_cnt[LRN_ACT_T1]].copy())
            t1_done = True
        cell, slot = best_matching_cell_t1(a, col, a.ip[IP_MIN_THR])
        p = MINUS_ONE
        if slot >= 0:
            p = slot_entry(a.slots, a.slot_off, cell, slot)
        if p >= 0 and a.seg_seq[p] != 0:
            st_set(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T, cell)
            new_update = compute_update(a, cell, slot, LRN_ACT_T1, YES, YES, on_t1)
            a.seg_total[p] += 1
            if new_update:
                adapt_segment(a, a.sc[SC_QLEN] - 1)
                a.sc[SC_QLEN] -= 1
        else:
            new_cell = get_cell_for_new_segment(a, col)
            st_set(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T, new_cell)
            if compute_update(a, new_cell, MINUS_ONE, LRN_ACT_T1, YES, YES, on_t1):
                adapt_segment(a, a.sc[SC_QLEN] - 1)
                a.sc[SC_QLEN] -= 1
    return n_unpredicted < n_cols_active // 2


@njit_inner
def learn_phase2(a: TMRef, read_only: Flag) -> None:
    """``Cells4::learnPhase2``: in each column predict the cell owning the segment with the
    most active synapses (>= activationThreshold) and queue an update for that segment."""
    forward_propagate(a, LRN_ACT_T, BANK_0, SC_NTS0, SC_NTC0, NO)
    st_clear(a.st_flags, a.st_list, a.st_cnt, LRN_PRED_T)
    thr = a.ip[IP_ACT_THR]
    cpc = a.ip[IP_CPC]
    ntc = a.sc[SC_NTC0]
    cands = a.scratch_cells
    nc = 0
    i: Int  # a touched-cell index here, a cell (np.int64) below
    for i in range(ntc):
        cell = a.touched_cells[0, i]
        if a.cell_act[0, cell] >= thr:
            cands[nc] = cell
            nc += 1
    if nc == 0:
        return
    order = np.sort(cands[:nc].copy())
    on_t = np.sort(a.st_list[LRN_ACT_T, :a.st_cnt[LRN_ACT_T]].copy())
    act = a.act[0]
    start = 0
    while start < nc:
        col = order[start] // cpc
        end = start
        while end < nc and order[end] // cpc == col:
            end += 1
        best_act = thr - 1 if thr > 0 else 0
        best_cell: Int = MINUS_ONE
        best_slot: Int = MINUS_ONE
        for idx in range(end - 1, start - 1, -1):
            i = np.int64(order[idx])
            if a.cell_act[0, i] <= best_act:
                continue
            for j in range(a.nslots[i]):
                p = slot_entry(a.slots, a.slot_off, i, j)
                if p < 0:
                    continue
                v = act[p]
                if best_act < v:
                    best_act = v
                    best_cell = i
                    best_slot = j
        if best_slot >= 0:
            st_set(a.st_flags, a.st_list, a.st_cnt, LRN_PRED_T, best_cell)
            if not read_only:
                compute_update(a, best_cell, best_slot, LRN_ACT_T, NO, YES, on_t)
                a.seg_total[slot_entry(a.slots, a.slot_off, best_cell, best_slot)] += 1
        start = end


@njit_borrowed
def _shift_rows(hist: Int32s, lens: Int32s, count: Int, n: Int) -> Int:
    """Drop the oldest ``count`` of the ``n`` patterns of a history; returns how many are left."""
    count = min(count, n)
    for r in range(count, n):
        m = lens[r]
        for j in range(m):
            hist[r - count, j] = hist[r, j]
        lens[r - count] = m
    return n - count


@njit_borrowed
def _set_col_flags(a: TMRef, cols: Int32s, n: Int, value: Int) -> None:
    """Set the input-column flags of ``cols[:n]`` to ``value``."""
    for i in range(n):
        a.col_flags[cols[i]] = value


@njit_inline
def learn_backtrack_from(a: TMRef, start: Int, read_only: Flag) -> Flag:
    """``Cells4::learnBacktrackFrom``: replay the learning history from start cells at
    ``start``; True if it stays in sequence up to the current step."""
    n = a.sc[SC_LRN_HN]
    current = n - 1
    if not read_only:
        a.sc[SC_QLEN] = 0
    in_sequence: Flag = True
    for offset in range(start, n):
        st_copy(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T1, LRN_ACT_T)
        st_copy(a.st_flags, a.st_list, a.st_cnt, LRN_PRED_T1, LRN_PRED_T)
        pattern = a.lrn_hist[offset]
        m = np.int64(a.lrn_len[offset])
        if not read_only:
            _set_col_flags(a, pattern, m, ONE)
            process_segment_updates(a, a.col_flags)
            _set_col_flags(a, pattern, m, ZERO)
        if offset == start:
            st_clear(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T)
            cpc = a.ip[IP_CPC]
            for i in range(m):
                st_set(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T, pattern[i] * cpc)
                in_sequence = True
        else:
            in_sequence = learn_phase1(a, pattern, m, read_only)
        if not in_sequence or offset == current:
            break
        learn_phase2(a, read_only)
    return in_sequence


@njit_inline
def learn_backtrack(a: TMRef) -> Int:
    """``Cells4::learnBacktrack``: find the earliest history step from which start cells
    lead to the current input, re-learn along that path; returns the steps backtracked."""
    n = a.sc[SC_LRN_HN]
    n_prev = n - 1 if n > 0 else 0
    if n_prev <= 0:
        return 0
    found: Int = MINUS_ONE
    for start in range(n_prev):
        if learn_backtrack_from(a, start, YES):
            found = start
            break
    if found < 0:
        a.sc[SC_LRN_HN] = _shift_rows(a.lrn_hist, a.lrn_len, n, n)
        return 0
    learn_backtrack_from(a, found, NO)
    a.sc[SC_LRN_HN] = _shift_rows(a.lrn_hist, a.lrn_len, found + 1, n)
    return n_prev - found


@njit_inline
def update_learning_state(a: TMRef, cols: Int32s, n_active: Int) -> None:
    """``Cells4::updateLearningState`` for the current input ``cols[:n_active]``."""
    st_copy(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T1, LRN_ACT_T)
    st_copy(a.st_flags, a.st_list, a.st_cnt, LRN_PRED_T1, LRN_PRED_T)
    max_bt = a.ip[IP_MAX_LRN_BT]
    if max_bt > 0:
        hn = a.sc[SC_LRN_HN]
        if hn > max_bt:
            hn = _shift_rows(a.lrn_hist, a.lrn_len, ONE, hn)
        for i in range(n_active):
            a.lrn_hist[hn, i] = cols[i]
        a.lrn_len[hn] = n_active
        a.sc[SC_LRN_HN] = hn + 1
    _set_col_flags(a, cols, n_active, ONE)
    process_segment_updates(a, a.col_flags)
    _set_col_flags(a, cols, n_active, ZERO)
    if a.sc[SC_PAM] > 0:
        a.sc[SC_PAM] -= 1
    a.sc[SC_LSEQ] += 1
    reset_called = a.sc[SC_RESET] != 0
    if not reset_called:
        if learn_phase1(a, cols, n_active, NO):
            a.sc[SC_PAM] = a.ip[IP_PAM_LEN]
    max_seq = a.ip[IP_MAX_SEQ_LEN]
    if reset_called or a.sc[SC_PAM] == 0 or (max_seq != 0 and a.sc[SC_LSEQ] >= max_seq):
        backsteps: Int = 0
        if not reset_called:
            backsteps = learn_backtrack(a)
        if reset_called or backsteps == 0:
            st_clear(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T)
            cpc = a.ip[IP_CPC]
            for i in range(n_active):
                st_set(a.st_flags, a.st_list, a.st_cnt, LRN_ACT_T, cols[i] * cpc)
            a.sc[SC_LRN_HN] = _shift_rows(a.lrn_hist, a.lrn_len, a.sc[SC_LRN_HN],
                                          a.sc[SC_LRN_HN])
        a.sc[SC_PAM] = a.ip[IP_PAM_LEN]
        a.sc[SC_LSEQ] = backsteps
        a.sc[SC_QLEN] = 0
    learn_phase2(a, NO)
