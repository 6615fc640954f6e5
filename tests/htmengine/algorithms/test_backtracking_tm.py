"""Tests of the backtracking TM (NuPIC Cells4 semantics)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from htmengine.algorithms.backtracking_tm import BacktrackingTM

SMALL = dict(numberOfCols=50, cellsPerColumn=4, activationThreshold=3, minThreshold=2,
             newSynapseCount=5, maxSynapsesPerSegment=8, maxSegmentsPerCell=4, seed=7)
A_COLS = [1, 7, 13, 22, 40]
B_COLS = [3, 9, 17, 28, 45]


def dense(cols, n=50) -> np.ndarray:
    """0/1 float32 input with ``cols`` on."""
    x = np.zeros(n, dtype=np.float32)
    x[list(cols)] = 1
    return x


def raw_anomaly(active, predicted) -> float:
    """NuPIC computeRawAnomalyScore."""
    active = np.asarray(active)
    if active.size == 0:
        return 0.0
    return 1.0 - np.intersect1d(active, predicted).size / active.size


def all_segments(tm):
    """Every live segment of the TM as (cell, segment dict)."""
    out = []
    for col in range(tm.numberOfCols):
        for i in range(tm.cellsPerColumn):
            for seg in tm.getSegmentsOnCell(col, i):
                out.append((col * tm.cellsPerColumn + i, seg))
    return out


def test_two_step_transition_creates_one_segment_per_column():
    tm = BacktrackingTM(**SMALL)
    tm.reset()
    tm.compute(dense(A_COLS), True)
    learn_a = np.flatnonzero(tm.getLearnActiveStateT())
    # after a reset the learning cells are the start cells
    assert learn_a.tolist() == [c * 4 for c in A_COLS]
    assert tm.numSegments() == 0
    tm.compute(dense(B_COLS), True)
    learn_b = np.flatnonzero(tm.getLearnActiveStateT())
    segs = all_segments(tm)
    assert len(segs) == len(B_COLS)
    assert sorted(cell for cell, _ in segs) == learn_b.tolist()
    for cell, seg in segs:
        assert cell // 4 in B_COLS and cell % 4 != 0  # start cells get no segments
        assert seg["sources"].tolist() == learn_a.tolist()
        assert np.all(seg["permanences"] == np.float32(0.21))
        assert seg["sequence"] and seg["positiveActivations"] == 1
        assert seg["lastActiveIteration"] == 2


def test_repeated_transition_increments_permanences_and_predicts():
    tm = BacktrackingTM(**SMALL)
    expected = np.float32(0.21)
    for rep in range(6):
        tm.reset()
        tm.compute(dense(A_COLS), True)
        predicted = tm.predicted_columns()
        if rep == 0:
            assert predicted.size == 0
        else:
            # confidence counts unconnected synapses too: B is predicted from rep 1 on
            assert predicted.tolist() == B_COLS
        tm.compute(dense(B_COLS), True)
        segs = all_segments(tm)
        assert len(segs) == len(B_COLS)
        if rep > 0:
            expected = min(np.float32(expected + np.float32(0.1)), np.float32(1.0))
        for _, seg in segs:
            assert np.all(seg["permanences"] == expected)
    # connected now (0.71 >= 0.5): exactly one predicted cell per B column after A
    tm.reset()
    tm.compute(dense(A_COLS), False)
    pred_cells = np.flatnonzero(tm.getPredictedState())
    assert sorted(set(pred_cells // 4)) == B_COLS and len(pred_cells) == len(B_COLS)
    conf = tm.getColConfidence()
    assert conf.dtype == np.float32
    assert np.isclose(conf.sum(), 1.0) and np.all(conf[B_COLS] > 0)


def test_missing_source_is_decremented():
    tm = BacktrackingTM(**SMALL)
    for _ in range(3):
        tm.reset()
        tm.compute(dense(A_COLS), True)
        tm.compute(dense(B_COLS), True)
    before = {cell: seg["permanences"].copy() for cell, seg in all_segments(tm)}
    sources = all_segments(tm)[0][1]["sources"]
    tm.reset()
    tm.compute(dense(A_COLS[1:]), True)   # the start cell of A_COLS[0] stays silent
    tm.compute(dense(B_COLS), True)
    for cell, seg in all_segments(tm):
        assert seg["sources"].tolist() == sources.tolist()
        old = before[cell]
        dropped = seg["sources"] == A_COLS[0] * 4
        assert seg["permanences"][dropped][0] == np.float32(old[dropped][0] - np.float32(0.1))
        assert np.all(seg["permanences"][~dropped]
                      == (old[~dropped] + np.float32(0.1)).astype(np.float32))


def test_reset_starts_from_start_cells_and_clears_predictions():
    tm = BacktrackingTM(**SMALL)
    for _ in range(3):
        tm.compute(dense(A_COLS), True)
        tm.compute(dense(B_COLS), True)
    tm.reset()
    assert tm.predicted_columns().size == 0
    assert not tm.getColConfidence().any()
    tm.compute(dense(B_COLS), True)
    active = np.flatnonzero(tm.getActiveState())
    assert active.tolist() == [c * 4 for c in B_COLS]
    assert np.flatnonzero(tm.getLearnActiveStateT()).tolist() == [c * 4 for c in B_COLS]


def test_infer_backtrack_locks_on_with_start_cells():
    seq = [A_COLS, B_COLS, [5, 11, 19, 30, 47], [0, 8, 21, 33, 49]]
    tm = BacktrackingTM(**SMALL)
    for _ in range(6):
        tm.reset()
        for cols in seq:
            tm.compute(dense(cols), True)
    # A out of context: no column predicted, so it would burst; backtracking finds that
    # starting A on its start cells predicts the next element and keeps that state instead
    assert not set(tm.predicted_columns()) & set(A_COLS)
    tm.compute(dense(A_COLS), False)
    assert np.flatnonzero(tm.getActiveState()).tolist() == [c * 4 for c in A_COLS]
    assert tm.predicted_columns().tolist() == B_COLS
    # an input that leads nowhere is left bursting
    tm.compute(dense([2, 14, 26, 38, 44]), False)
    assert int(tm.getActiveState().sum()) == 5 * 4


def test_unpredicted_input_bursts_columns():
    tm = BacktrackingTM(**SMALL)
    tm.compute(dense(A_COLS), True)
    active = np.flatnonzero(tm.getActiveState())
    assert active.tolist() == [c * 4 + i for c in A_COLS for i in range(4)]
    out = tm.compute(dense(B_COLS), True)
    assert out.dtype == np.float32 and out.shape == (200,)
    assert np.array_equal(np.flatnonzero(out),
                          np.flatnonzero(tm.getActiveState() | tm.getPredictedState()))


def _random_stream(seed, steps, n_cols=2048, n_active=40, n_patterns=30):
    rng = np.random.default_rng(seed)
    pats = [np.sort(rng.choice(n_cols, n_active, replace=False)) for _ in range(n_patterns)]
    order = rng.integers(0, n_patterns, size=steps)
    for i, k in enumerate(order):
        # mostly a fixed cycle, sometimes a random jump (exercises backtracking)
        yield pats[i % 7] if rng.random() < 0.8 else pats[k]


def out_synapse_entries(tm) -> tuple[list, list]:
    """(entries stored in the forward-propagation lists, entries implied by the segments),
    each a sorted list of (source cell, pool id, connected)."""
    a = tm._a
    stored = []
    for src in np.flatnonzero(a.out_cnt):
        n, b, seen = int(a.out_cnt[src]), int(a.out_head[src]), 0
        while b >= 0:
            m = min(16, n - seen)
            # entry = 4 * pool id + 2 * orphan + connected
            stored += [(int(src), int(e) >> 2, int(e) & 1) for e in a.blk[b, :m]]
            seen += m
            b = int(a.blk_next[b])
    implied = []
    for p in range(int(a.sc[5])):
        for i in range(int(a.seg_n[p])):
            implied.append((int(a.seg_src[p, i]), p,
                            int(a.seg_perm[p, i] >= np.float32(tm.connectedPerm))))
    return sorted(stored), sorted(implied)


def test_limits_are_respected_and_structures_stay_consistent():
    params = dict(SMALL, cellsPerColumn=3, maxSegmentsPerCell=2, maxSynapsesPerSegment=6)
    tm = BacktrackingTM(**params)
    for cols in _random_stream(3, 600, n_cols=50, n_active=6, n_patterns=40):
        tm.compute(dense(cols), True)
        a = tm._a
        assert int(a.out_cnt.sum()) == tm.numSynapses()
    stored, implied = out_synapse_entries(tm)
    assert stored == implied
    assert tm.numSegments() > 0
    for col in range(50):
        for i in range(3):
            segs = tm.getSegmentsOnCell(col, i)
            assert len(segs) <= 2
            if i == 0:
                assert segs == []
            for seg in segs:
                src = seg["sources"]
                # nupic.core 0.4.10 may leave up to newSynapseCount extra synapses
                assert 1 <= src.size <= 6 + params["newSynapseCount"]
                assert np.all(np.diff(src) > 0)
                assert np.all(seg["permanences"] > 0) and np.all(seg["permanences"] <= 1)
    assert tm.numSegments() <= 50 * 2 * 2


def test_learns_repeating_sequence_and_flags_novel_input():
    tm = BacktrackingTM()
    rng = np.random.default_rng(11)
    pats = [np.sort(rng.choice(2048, 40, replace=False)) for _ in range(10)]
    predicted = np.zeros(0, dtype=np.int64)
    scores = []
    for step in range(80):
        cols = pats[step % 10]
        scores.append(raw_anomaly(cols, predicted))
        tm.compute(dense(cols, 2048), True)
        predicted = tm.predicted_columns()
    assert scores[0] == 1.0
    assert max(scores[30:]) < 0.05
    novel = np.sort(rng.choice(2048, 40, replace=False))
    assert raw_anomaly(novel, predicted) > 0.9


def _run(tm, stream):
    outs = []
    for cols in stream:
        out = tm.compute(dense(cols, 2048), True)
        outs.append((np.flatnonzero(out), tm.getColConfidence()))
    return outs



def test_loaded_state_keeps_segments_and_the_synapse_index():
    """What the generic round trip (test_component_conformance.py) does not look at: the
    restored TM has the same segments and synapses, and its out-synapse index agrees with
    the segments it was rebuilt from."""
    stream = list(_random_stream(9, 200))
    tm = BacktrackingTM()
    _run(tm, stream)
    state = tm.state_dict()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **state)
    buffer.seek(0)
    with np.load(buffer) as npz:
        loaded = BacktrackingTM.from_state_dict(dict(npz))
    assert loaded.numSegments() == tm.numSegments() > 0
    assert loaded.numSynapses() == tm.numSynapses()
    stored, implied = out_synapse_entries(loaded)
    assert stored == implied


def test_bad_input_is_rejected():
    tm = BacktrackingTM(**SMALL)
    with pytest.raises(ValueError, match="bottomUpInput"):
        tm.compute(np.zeros(49, dtype=np.float32), True)
    with pytest.raises(ValueError, match="enableLearn"):
        tm.compute(dense(A_COLS), False, False)
    with pytest.raises(ValueError, match="cellsPerColumn"):
        BacktrackingTM(cellsPerColumn=1)
    with pytest.raises(ValueError, match="maxSynapsesPerSegment"):
        BacktrackingTM(maxSynapsesPerSegment=10, newSynapseCount=20)
    with pytest.raises(ValueError, match="globalDecay"):
        BacktrackingTM(globalDecay=0.1)
    with pytest.raises(ValueError, match="misses"):
        BacktrackingTM.from_state_dict({"tm_version": 1})
