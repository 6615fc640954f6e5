"""_codec: the compact encodings of permanences and synapse sources are exact."""

import numpy as np

from htmengine.algorithms import _codec


def test_index_small_is_exact_and_falls_back_beyond_65536_values():
    rng = np.random.default_rng(3)
    values = rng.choice(np.float32([0.21, 0.31, 1.0, 0.0099999, -0.0, 0.0]), 5000)
    table, index = _codec.index_small(values)
    assert index.dtype == np.uint8 and table.shape == (6,)
    assert np.array_equal(table[index].view(np.int32), values.view(np.int32))  # -0.0 kept
    many = rng.random(300).astype(np.float32)
    table, index = _codec.index_small(many)
    assert index.dtype == np.uint16 and np.array_equal(table[index], many)
    assert _codec.index_small(np.arange(70000, dtype=np.float32)) is None


def test_index_cells_keeps_order():
    cells = np.array([5, 9, 70, 9, 65535, 5], dtype=np.uint16)
    used, index = _codec.index_cells(cells, 65536)
    assert used.tolist() == [5, 9, 70, 65535] and index.dtype == np.uint8
    assert np.array_equal(used[index], cells)


def test_rows_round_trip_bit_exactly_whatever_the_values():
    rng = np.random.default_rng(7)
    initial = np.round(rng.random((6, 50)), 5).astype(np.float32)
    rows = initial.copy()
    for _ in range(300):  # learning-like moves, clipped and trimmed, float32 arithmetic
        delta = np.where(rng.random(rows.shape) < 0.3, np.float32(0.003), np.float32(-0.0005))
        rows = np.clip(rows + delta, np.float32(0.0), np.float32(1.0))
        rows[rows < np.float32(0.0015)] = 0
    rows[0, :5] = [np.nan, np.inf, -1e30, 3e-39, -0.0]  # anything at all still round-trips
    rows[1, :3] = [7e4, -7e4, 0.12345678]
    code, m, r, x = _codec.encode_rows(rows, initial, 0.0005)
    assert code.dtype == np.uint8 and m.dtype == np.int16 and r.dtype == np.int16
    assert (code == _codec.FROM_INITIAL).sum() + (code == _codec.FROM_ZERO).sum() == m.size
    out = np.empty_like(rows)
    assert _codec.decode_rows(code, m, r, x, initial, 0.0005, out)
    assert np.array_equal(out.view(np.int32), rows.view(np.int32))
    assert not _codec.decode_rows(code, m[:-1], r[:-1], x, initial, 0.0005, out)
    bad = code.copy()
    bad[0, 0] = 9
    assert not _codec.decode_rows(bad, m, r, x, initial, 0.0005, out)


def test_packed_rows_round_trip_bit_exactly_at_halfway_quotients():
    # the packed encoder predicts m with the step's reciprocal: where (value - initial) / step
    # is within rounding of a half, its m may differ from the quotient's; the distance still
    # makes every entry exact
    step = 0.0005
    rng = np.random.default_rng(11)
    initial = np.round(rng.random((4, 64)), 5).astype(np.float32)
    halves = (rng.integers(-40, 40, size=initial.shape) + 0.5) * step
    rows = (initial.astype(np.float64) + halves).astype(np.float32)
    rows[1] = ((rng.integers(1, 900, size=64) + 0.5) * step).astype(np.float32)  # from zero
    rows[2, ::3] = 0.0
    rows[3, ::5] = 1.0
    spread = np.nextafter(rows, np.float32(2.0))  # one unit above: the other side of the half
    for values in (rows, spread):
        state = _codec.rows_state(values, initial, step)
        assert state["perm_nib"].dtype == np.uint8 and state["perm_r8"].dtype == np.int8
        out = _codec.rows_from_state(state, initial)
        assert np.array_equal(out.view(np.int32), values.view(np.int32))
