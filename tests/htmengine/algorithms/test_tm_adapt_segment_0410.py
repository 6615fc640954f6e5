"""adaptSegment as in nupic.core 0.4.10 (the Cells4 behind NAB's NuPIC score): synapses
freed by their stale pre-pruning indices, possibly "orphaned" out-synapses."""

from __future__ import annotations

import numpy as np

from htmengine.algorithms import _tm_state as S
from htmengine.algorithms._tm_kernels import adapt_segment
from htmengine.algorithms._tm_store import rebuild_out_synapses
from htmengine.algorithms.backtracking_tm import BacktrackingTM

A, B, C, D, E, X, Y, Z = 10, 12, 14, 16, 18, 20, 22, 24  # source cells
CELL = 1


def _tm_with_segment(perms: list[float]) -> tuple[BacktrackingTM, int]:
    """A TM holding one segment on CELL with sources A..E and the given permanences."""
    tm = BacktrackingTM(numberOfCols=20, cellsPerColumn=2, activationThreshold=2,
                        minThreshold=1, newSynapseCount=5, maxSynapsesPerSegment=5,
                        maxSegmentsPerCell=2, initialPerm=0.21, connectedPerm=0.5,
                        permanenceInc=0.1, permanenceDec=0.1, seed=3)
    a = tm._a
    a.sc[S.SC_NLRN] = 1
    _queue(a, 0, CELL, -1, [A, B, C, D, E])
    adapt_segment(a, 0)
    p = int(a.slots[a.slot_off[CELL]])
    a.seg_perm[p, :5] = np.array(perms, dtype=np.float32)
    a.seg_nconn[p] = int((a.seg_perm[p, :5] >= a.fp[S.FP_CONN]).sum())
    rebuild_out_synapses(a)  # connected flags of the out-synapses follow the permanences
    return tm, p


def _queue(a, q: int, cell: int, slot: int, sources: list[int]) -> None:
    a.q_cell[q] = cell
    a.q_seg[q] = slot
    a.q_seq[q] = 1
    a.q_time[q] = a.sc[S.SC_NLRN]
    a.q_n[q] = len(sources)
    a.q_syn[q, :len(sources)] = sources


def _segment(a, p: int) -> tuple[list[int], list[float]]:
    n = int(a.seg_n[p])
    return a.seg_src[p, :n].tolist(), [round(float(x), 4) for x in a.seg_perm[p, :n]]


def _entries(a, src: int) -> list[int]:
    n, b = int(a.out_cnt[src]), int(a.out_head[src])
    return [int(e) for e in a.blk[b, :n]] if n else []


def test_stale_index_past_the_end_frees_nothing_and_the_segment_overflows():
    # A dies in the decrement pass; freeNSynapses then picks E twice (index 3 of the
    # compacted segment, and index 4 read past its end), so only one synapse is freed.
    tm, p = _tm_with_segment([0.05, 0.5, 0.5, 0.5, 0.12])
    a = tm._a
    _queue(a, 1, CELL, 0, [X, Y, Z])
    adapt_segment(a, 1)
    sources, perms = _segment(a, p)
    assert sources == [B, C, D, X, Y, Z]  # 6 synapses with maxSynapsesPerSegment 5
    assert perms == [0.4, 0.4, 0.4, 0.21, 0.21, 0.21]
    assert _entries(a, A) == [] and _entries(a, E) == []
    assert _entries(a, B) == [4 * p]


def test_stale_index_orphans_a_synapse_that_stays_on_the_segment():
    # Update: C, D active + X, Y, Z new.  A dies; two must go: B (index 0, 0.4) and the
    # stale index 4, which past the end still holds E (0.4): E's out-synapse is erased
    # although E stays on the segment (an orphan) and C (index 1 now, 0.6) is kept.
    tm, p = _tm_with_segment([0.05, 0.5, 0.5, 0.5, 0.5])
    a = tm._a
    _queue(a, 1, CELL, 0, [C, D, X, Y, Z])
    adapt_segment(a, 1)
    sources, perms = _segment(a, p)
    assert sources == [C, D, E, X, Y, Z]
    assert perms == [0.6, 0.6, 0.4, 0.21, 0.21, 0.21]
    assert _entries(a, E) == [4 * p + 2]  # orphan, not connected
    assert _entries(a, C) == [4 * p + 1]
    assert _entries(a, B) == []


def test_orphan_synapses_survive_save_and_load():
    tm, p = _tm_with_segment([0.05, 0.5, 0.5, 0.5, 0.5])
    _queue(tm._a, 1, CELL, 0, [C, D, X, Y, Z])
    adapt_segment(tm._a, 1)
    loaded = BacktrackingTM.from_state_dict(tm.state_dict())
    assert _entries(loaded._a, E) == [4 * p + 2]
    assert _segment(loaded._a, p) == _segment(tm._a, p)
