"""_syn_codec and the packed SP rows: the TM synapse and SP permanence encodings are exact,
fall back where they cannot apply, and refuse arrays that do not fit together."""

import numpy as np

from htmengine.algorithms import _codec, _syn_codec
from htmengine.algorithms.backtracking_tm import BacktrackingTM


def _segments(rng, n_segments, n_cells, width):
    """Flat ascending source indices of random segments (some empty, some sharing sources
    with their neighbours, gaps of every size) and their sizes."""
    sizes = rng.integers(0, width + 1, n_segments)
    sizes[::7] = 0
    pool = np.sort(rng.choice(n_cells, 3 * width, replace=False))
    segments = []
    for p, n in enumerate(sizes):
        source = pool if p % 3 else np.arange(n_cells)  # neighbours share sources
        segments.append(np.sort(rng.choice(source, n, replace=False)))
    return np.concatenate(segments).astype(np.uint16), sizes


def test_transposed_sources_round_trip_with_every_escape():
    rng = np.random.default_rng(5)
    index, sizes = _segments(rng, 700, 5000, 20)
    counts, nibbles, small, wide = _syn_codec.transpose_sources(index, sizes, 5000)
    assert small.size and wide.size  # gaps of 15..269 and of 270 and more occurred
    assert nibbles.shape == ((index.size + 1) // 2,) and counts.sum() == index.size
    assert np.array_equal(_syn_codec.untranspose_sources(counts, nibbles, small, wide, sizes),
                          index)
    # a source listed twice on a segment (ascending, not strictly) round-trips too
    twice = np.array([3, 3, 9, 1, 2], dtype=np.uint8)
    coded = _syn_codec.transpose_sources(twice, np.array([3, 2]), 10)
    assert np.array_equal(_syn_codec.untranspose_sources(*coded, np.array([3, 2])), twice)


def test_transposed_sources_round_trip_beyond_65536_segments():
    # segment numbers past uint16 (the transposition then orders them as int32)
    sizes = np.zeros(70_000, dtype=np.int64)
    live = np.array([0, 1, 5, 300, 66_000, 69_999])
    sizes[live] = 2
    index = np.tile(np.array([4, 11], dtype=np.uint16), live.size)
    index[::4] = 0  # sources 0 and 11 on every other live segment
    counts, nibbles, small, wide = _syn_codec.transpose_sources(index, sizes, 12)
    assert int(wide.max()) >= 65536  # gaps and segments past uint16
    assert np.array_equal(_syn_codec.untranspose_sources(counts, nibbles, small, wide, sizes),
                          index)


def test_transposed_sources_refuse_what_does_not_fit():
    rng = np.random.default_rng(6)
    index, sizes = _segments(rng, 300, 3000, 16)
    assert _syn_codec.transpose_sources(index[::-1].copy(), sizes, 3000) is None  # descending
    counts, nibbles, small, wide = _syn_codec.transpose_sources(index, sizes, 3000)
    more = counts.astype(np.int64)
    more[0] += 1
    bigger = sizes.copy()
    bigger[1] += 1
    for args in ((counts, nibbles[:-1], small, wide, sizes),
                 (counts, nibbles, small[:-1], wide, sizes),
                 (counts, nibbles, small, wide[:-1], sizes),
                 (counts, nibbles, np.append(small, 0).astype(np.uint8), wide, sizes),
                 (more, nibbles, small, wide, sizes),
                 (counts, nibbles, small, wide, bigger),
                 (counts, nibbles.astype(np.uint16), small, wide, sizes)):
        assert _syn_codec.untranspose_sources(*args) is None


def test_nibble_index_is_exact_with_escapes():
    rng = np.random.default_rng(7)
    weights = np.r_[[1.0, 1.0, 40.0, 30.0], np.ones(20)]
    index = rng.choice(24, 10001, p=weights / weights.sum()).astype(np.uint8)
    order, packed, escapes = _syn_codec.nibble_index(index, 24)
    assert order[:2].tolist() == [2, 3]  # the commonest first
    assert escapes.size and escapes.dtype == np.uint8 and packed.shape == (5001,)
    decoded = _syn_codec.unnibble_index(packed, escapes, index.size, 24)
    assert np.array_equal(order[decoded], index)
    many = rng.integers(0, 3000, 5000).astype(np.uint16)
    order, packed, escapes = _syn_codec.nibble_index(many, 3000)
    assert escapes.dtype == np.uint16
    assert np.array_equal(order[_syn_codec.unnibble_index(packed, escapes, many.size, 3000)],
                          many)
    assert _syn_codec.unnibble_index(packed, escapes[:-1], many.size, 3000) is None
    assert _syn_codec.unnibble_index(packed, escapes, many.size, 100) is None
    assert _syn_codec.unnibble_index(packed[:-1], escapes, many.size, 3000) is None


def test_packed_rows_round_trip_bit_exactly_and_refuse_bad_arrays():
    rng = np.random.default_rng(8)
    initial = np.round(rng.random((5, 41)), 5).astype(np.float32)  # an odd entry count
    rows = initial.copy()
    for _ in range(400):
        delta = np.where(rng.random(rows.shape) < 0.3, np.float32(0.003), np.float32(-0.0005))
        rows = np.clip(rows + delta, np.float32(0.0), np.float32(1.0))
        rows[rows < np.float32(0.0015)] = 0
    rows[0, :5] = [np.nan, np.inf, -1e30, 3e-39, -0.0]
    rows[1, :3] = [7e4, -7e4, 0.12345678]
    state = _codec.rows_state(rows, initial, 0.0005)
    # the same coding against rows picked out of a larger initial matrix
    matrix = np.round(rng.random((9, 41)), 5).astype(np.float32)
    picked = np.array([7, 1, 8, 0, 4])
    matrix[picked] = initial
    by_index = _codec.rows_state(rows, matrix, 0.0005, row_index=picked)
    assert by_index.keys() == state.keys()
    for name, value in state.items():
        assert np.array_equal(by_index[name], value), name
    assert state["perm_nib"].shape == ((rows.size + 1) // 2,)
    assert state["perm_r8"].dtype == np.int8 and state["perm_x"].size
    assert state["perm_dm8"].dtype == np.int8 and state["perm_mx"].dtype == np.int16
    assert state["perm_mx"].size and (state["perm_dm8"] == 0).any()  # escapes and repeats
    out = _codec.rows_from_state(state, initial)
    assert np.array_equal(out.view(np.int32), rows.view(np.int32))
    # the second layout (m as int16 per predicted entry) is still read
    m, previous = [], 0
    escaped = iter(state["perm_mx"].tolist())
    for change in state["perm_dm8"].tolist():
        previous = next(escaped) if change == -128 else previous + change
        m.append(previous)
    second = {k: v for k, v in state.items() if k not in ("perm_dm8", "perm_mx")}
    second["perm_m"] = np.array(m, dtype=np.int16)
    assert np.array_equal(_codec.rows_from_state(second, initial).view(np.int32),
                          rows.view(np.int32))
    for name, value in (("perm_dm8", state["perm_dm8"][:-1]),
                        ("perm_dm8", state["perm_dm8"].astype(np.int16)),
                        ("perm_mx", state["perm_mx"][:-1]),
                        ("perm_mx", np.r_[state["perm_mx"], 5].astype(np.int16)),
                        ("perm_r8", state["perm_r8"][:-1]),
                        ("perm_x", state["perm_x"][:-1]), ("perm_nib", state["perm_nib"][:-1]),
                        ("perm_nib", np.full_like(state["perm_nib"], 0x99)),
                        ("perm_r8", state["perm_r8"].astype(np.int16))):
        try:
            _codec.rows_from_state({**state, name: value}, initial)
        except ValueError:
            continue
        raise AssertionError(f"bad {name} accepted")


def test_tm_with_unsorted_segment_sources_keeps_the_index_form():
    """A state whose segment sources are not ascending (not written by this TM, but
    readable) is saved with version 3's source index and round-trips exactly."""
    rng = np.random.default_rng(9)
    tm = BacktrackingTM(numberOfCols=64, cellsPerColumn=4, activationThreshold=3,
                        minThreshold=2, newSynapseCount=5, maxSynapsesPerSegment=8, seed=3)
    patterns = [np.sort(rng.choice(64, 6, replace=False)) for _ in range(8)]
    for step in range(120):
        x = np.zeros(64, dtype=np.float32)
        x[patterns[step % 8]] = 1
        tm.compute(x, True)
    state = tm.state_dict()
    assert "syn_src_gap" in state and "syn_src_index" not in state
    # the same synapses in version 3's form, the first segment's sources reversed
    index = _syn_codec.untranspose_sources(*(state[name] for name in (
        "syn_src_count", "syn_src_gap", "syn_src_gap_b", "syn_src_gap_x")), state["seg_n"])
    values = state["syn_perm_values"]
    value_index = _syn_codec.unnibble_index(state["syn_perm_nib"], state["syn_perm_nib_x"],
                                            index.size, values.size)
    first = int(state["seg_n"][0])
    index[:first] = index[:first][::-1].copy()
    value_index[:first] = value_index[:first][::-1].copy()
    old = {k: v for k, v in state.items() if not k.startswith("syn_")}
    old.update(tm_version=3, syn_src_cells=state["syn_src_cells"], syn_src_index=index,
               syn_perm_values=values, syn_perm_index=value_index.astype(np.uint8))
    again = BacktrackingTM.from_state_dict(old).state_dict()
    assert "syn_src_index" in again and "syn_src_gap" not in again
    reloaded = BacktrackingTM.from_state_dict(again)
    segment = reloaded._a.seg_src[0, :first]
    assert np.array_equal(segment, state["syn_src_cells"][index[:first]])
    assert np.all(np.diff(segment) < 0)
    assert reloaded.numSynapses() == tm.numSynapses()
