"""numba kernels of the backtracking TM: inference state (Cells4 inferPhase1/2, inferBacktrack)
and the per-step ``compute``/``reset`` entry points."""

from __future__ import annotations

import numpy as np
from numba import njit

from htmengine.algorithms._tm_kernels import (
    DUTY_TIERS,
    duty_cycle,
    forward_propagate,
    slot_entry,
    st_clear,
    st_copy,
    st_set,
)
from htmengine.algorithms._tm_learn import _shift_rows, update_learning_state
from htmengine.algorithms._tm_ref import TMRef, njit_borrowed, njit_inline, njit_inner, tm_ref
from htmengine.algorithms._tm_state import (
    BANK_0,
    CONF_T,
    CONF_T1,
    FS_AVG_DENSITY,
    INF_ACT_BACKUP,
    INF_ACT_T,
    INF_ACT_T1,
    INF_PRED_BACKUP,
    INF_PRED_T,
    INF_PRED_T1,
    IP_ACT_THR,
    IP_CPC,
    IP_MAX_INF_BT,
    MINUS_ONE,
    NO,
    ONE,
    SAVED_STATES,
    SC_INF_HN,
    SC_LRN_HN,
    SC_NITER,
    SC_NLRN,
    SC_NTC0,
    SC_NTS0,
    SC_QLEN,
    SC_RESET,
    SC_SEG_HIGH,
    Flag,
    Float32s,
    Int,
    Int32s,
    TMArrays,
)


@njit_borrowed
def infer_phase1(a: TMRef, cols: Int32s, n_active: Int, use_start_cells: Flag) -> bool:
    """``Cells4::inferPhase1``: activate predicted cells of active columns, burst the others
    (or only start cells after a reset).  True if at least half the columns were predicted."""
    st_clear(a.st_flags, a.st_list, a.st_cnt, INF_ACT_T)
    cpc = a.ip[IP_CPC]
    if use_start_cells:
        for i in range(n_active):
            st_set(a.st_flags, a.st_list, a.st_cnt, INF_ACT_T, cols[i] * cpc)
        return True
    n_predicted = 0
    for i in range(n_active):
        cell0 = cols[i] * cpc
        n_pred_cells = 0
        for c in range(cell0, cell0 + cpc):
            if a.st_flags[INF_PRED_T1, c]:
                n_pred_cells += 1
                st_set(a.st_flags, a.st_list, a.st_cnt, INF_ACT_T, c)
        if n_pred_cells > 0:
            n_predicted += 1
        else:
            for c in range(cell0, cell0 + cpc):
                st_set(a.st_flags, a.st_list, a.st_cnt, INF_ACT_T, c)
    return n_predicted >= 0.5 * n_active


@njit_inner
def infer_phase2(a: TMRef) -> bool:
    """``Cells4::inferPhase2``: predicted cells (a segment with >= activationThreshold active
    connected synapses) and column confidences (sum of the duty cycles of segments with
    >= activationThreshold active synapses, connected or not, normalised).  True if enough
    columns are predicted."""
    forward_propagate(a, INF_ACT_T, BANK_0, SC_NTS0, SC_NTC0, NO)
    st_clear(a.st_flags, a.st_list, a.st_cnt, INF_PRED_T)
    conf = a.colconf[CONF_T]
    conf[:] = 0
    thr = a.ip[IP_ACT_THR]
    cpc = a.ip[IP_CPC]
    now = a.sc[SC_NLRN]
    act = a.act[0]
    ntc = a.sc[SC_NTC0]
    cands = a.scratch_cells
    nc = 0
    for i in range(ntc):
        cell = a.touched_cells[0, i]
        if a.cell_act[0, cell] >= thr:
            cands[nc] = cell
            nc += 1
    order = np.sort(cands[:nc].copy())
    cols_seen = np.empty(nc, dtype=np.int64)
    n_seen = 0
    n_pred_cols = 0
    total = np.float32(0.0)
    start = 0
    while start < nc:
        col = order[start] // cpc
        end = start
        col_predicted = False
        while end < nc and order[end] // cpc == col:
            cell = np.int64(order[end])
            for j in range(a.nslots[cell]):
                p = slot_entry(a.slots, a.slot_off, cell, j)
                if p < 0 or act[p] < thr:
                    continue
                dc = duty_cycle(a.seg_pos, a.seg_dc, a.seg_dc_iter, p, now, NO, NO)
                conf[col] = np.float32(conf[col] + dc)
                if a.act_conn[0, p] >= thr:  # Cells4::isActive
                    st_set(a.st_flags, a.st_list, a.st_cnt, INF_PRED_T, cell)
                    col_predicted = True
            end += 1
        total = np.float32(total + conf[col])
        cols_seen[n_seen] = col
        n_seen += 1
        if col_predicted:
            n_pred_cols += 1
        start = end
    if total > 0:
        for i in range(n_seen):
            conf[cols_seen[i]] = np.float32(conf[cols_seen[i]] / total)
    enough: bool = n_pred_cols >= 0.5 * a.fs[FS_AVG_DENSITY]
    return enough


@njit_inline
def infer_backtrack(a: TMRef) -> None:
    """``Cells4::inferBacktrack``: replay the inference history from start cells at the
    earliest step that leads to confident predictions of the current input; otherwise keep
    the bursting state.  Failed starting points are dropped from the history."""
    n = a.sc[SC_INF_HN]
    if n == 0:
        return
    st_copy(a.st_flags, a.st_list, a.st_cnt, INF_ACT_BACKUP, INF_ACT_T)
    st_copy(a.st_flags, a.st_list, a.st_cnt, INF_PRED_BACKUP, INF_PRED_T1)
    candidate: Int = MINUS_ONE
    for start in range(n):
        in_sequence = False
        for offset in range(start, n):
            st_copy(a.st_flags, a.st_list, a.st_cnt, INF_PRED_T1, INF_PRED_T)
            in_sequence = infer_phase1(a, a.inf_hist[offset], np.int64(a.inf_len[offset]),
                                       offset == start)
            if not in_sequence:
                break
            in_sequence = infer_phase2(a)
            if not in_sequence:
                break
        if in_sequence:
            # the state just computed is the candidate (Cells4 saves and reinstalls it)
            candidate = start
            break
    if candidate == -1:
        st_copy(a.st_flags, a.st_list, a.st_cnt, INF_ACT_T, INF_ACT_BACKUP)
        infer_phase2(a)
        a.sc[SC_INF_HN] = _shift_rows(a.inf_hist, a.inf_len, n, n)
    else:
        a.sc[SC_INF_HN] = _shift_rows(a.inf_hist, a.inf_len, candidate + 1, n)
    st_copy(a.st_flags, a.st_list, a.st_cnt, INF_PRED_T1, INF_PRED_BACKUP)


@njit_inline
def update_inference_state(a: TMRef, cols: Int32s, n_active: Int) -> None:
    """``Cells4::updateInferenceState`` for the current input ``cols[:n_active]``."""
    st_copy(a.st_flags, a.st_list, a.st_cnt, INF_ACT_T1, INF_ACT_T)
    st_copy(a.st_flags, a.st_list, a.st_cnt, INF_PRED_T1, INF_PRED_T)
    for c in range(a.colconf.shape[1]):  # (no slice assignment: see choose_cells_to_learn_from)
        a.colconf[CONF_T1, c] = a.colconf[CONF_T, c]
    max_bt = a.ip[IP_MAX_INF_BT]
    if max_bt > 0:
        hn = a.sc[SC_INF_HN]
        if hn > max_bt:
            hn = _shift_rows(a.inf_hist, a.inf_len, ONE, hn)
        for i in range(n_active):
            a.inf_hist[hn, i] = cols[i]
        a.inf_len[hn] = n_active
        a.sc[SC_INF_HN] = hn + 1
    if not infer_phase1(a, cols, n_active, a.sc[SC_RESET] != 0):
        infer_backtrack(a)
        return
    if not infer_phase2(a):
        infer_backtrack(a)


@njit_inline
def tm_output(a: TMRef, out: Float32s) -> None:
    """Cells4 output: 1 for cells predicted or active in the inference state."""
    out[:] = 0
    for i in range(a.st_cnt[INF_PRED_T]):
        out[a.st_list[INF_PRED_T, i]] = 1
    for i in range(a.st_cnt[INF_ACT_T]):
        out[a.st_list[INF_ACT_T, i]] = 1


@njit(cache=True)
def tm_compute(arrays: TMArrays, cols: Int32s, learn: Flag, infer: Flag, out: Float32s) -> None:
    """``Cells4::compute`` for the sorted active columns ``cols`` on the ``TMArrays``
    ``arrays``; the cell output goes to ``out``."""
    a: TMRef = tm_ref(arrays)
    n_active = cols.shape[0]
    if learn:
        a.sc[SC_NLRN] += 1
    a.sc[SC_NITER] += 1
    now = a.sc[SC_NLRN]
    if learn:
        at_tier = False
        for t in range(DUTY_TIERS.shape[0]):
            if now == DUTY_TIERS[t]:
                at_tier = True
        if at_tier:
            for p in range(a.sc[SC_SEG_HIGH]):
                if a.seg_n[p] > 0:
                    duty_cycle(a.seg_pos, a.seg_dc, a.seg_dc_iter, p, now, NO, NO)
    avg = a.fs[FS_AVG_DENSITY]
    if avg == 0.0:
        a.fs[FS_AVG_DENSITY] = np.float32(n_active)
    else:
        cool = np.float32(0.99)
        a.fs[FS_AVG_DENSITY] = np.float32(cool * avg + (np.float32(1.0) - cool)
                                          * np.float32(n_active))
    if infer:
        update_inference_state(a, cols, n_active)
    if learn:
        update_learning_state(a, cols, n_active)
    a.sc[SC_RESET] = 0
    tm_output(a, out)


@njit(cache=True)
def tm_reset(arrays: TMArrays) -> None:
    """``Cells4::reset`` on the ``TMArrays`` ``arrays``: clear all cell states, confidences,
    queued updates and histories; the next step starts from start cells."""
    a: TMRef = tm_ref(arrays)
    for k in range(SAVED_STATES):
        st_clear(a.st_flags, a.st_list, a.st_cnt, k)
    a.colconf[:, :] = 0
    a.sc[SC_QLEN] = 0
    a.sc[SC_RESET] = 1
    a.sc[SC_INF_HN] = 0
    a.sc[SC_LRN_HN] = 0
