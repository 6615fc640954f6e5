"""Exact compact encodings of the model's largest state arrays (numba).

* :func:`index_small` — a float32 array taking few distinct values (the TM's synapse
  permanences: a few dozen values) as the sorted distinct values and a uint8 index per element
  (uint16 when there are more than 256 values; ``None`` when more than 65,536).
* :func:`index_cells` — cell indices (the TM's synapse sources: a few thousand distinct cells
  of 65,536) as the sorted distinct cells and an index per element; sorted runs stay sorted,
  and the indices are small, so the compressor finds the repeated runs and codes them in fewer
  bits.
* :func:`encode_rows` / :func:`decode_rows` — SP permanence rows as their difference from the
  regenerable initial rows: learning moves a permanence by multiples of the SP's increments, so
  ``value ≈ initial + m * step`` (or ``≈ m * step`` once it was trimmed to 0 and grew again);
  each entry is a code (0.0, 1.0, from the initial value, from 0, or raw bits), the integer
  ``m`` and the exact distance in float32 bit patterns from the prediction, which is a few
  units. Decoding recomputes the same prediction and adds the distance: bit-exact.
  Written now (:func:`encode_rows_packed`): the codes two per byte (``perm_nib``), the
  distances as int8 (``perm_r8``, -128 escaping to the int32 list), ``m`` as its change from
  the previous predicted entry (``perm_dm8``, int8, -128 escaping to the int16 list
  ``perm_mx`` of the m themselves: a column's synapses mostly learnt the same steps, four
  changes in five are 0). The first layout (uint8 ``perm_code``, int16 ``perm_m`` and
  ``perm_r``) and the second (``perm_nib``, int16 ``perm_m``, ``perm_r8``) are still read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

ZERO, ONE, FROM_INITIAL, FROM_ZERO, RAW = 0, 1, 2, 3, 4
R_ESCAPE = -32768  # perm_r entry whose distance is in the int32 exception list
R8_ESCAPE = -128  # the same for perm_r8
M8_ESCAPE = -128  # perm_dm8 entry whose m is the next of perm_mx
_GOOD_ENOUGH = 16  # a distance from the initial value this small is kept without trying 0
_M_MAX = 32767


def rows_state(rows: np.ndarray, initial: np.ndarray, step: float,
               row_index: np.ndarray | None = None) -> dict[str, Any]:
    """``perm_*`` state fields coding float32 ``rows`` against ``initial`` (module doc): the
    rows of the same shape, or with ``row_index`` the whole initial matrix, row ``k`` of
    ``rows`` coded against its row ``row_index[k]`` (no copy of the initial rows)."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if rows.ndim != 2:
        rows = rows.reshape(1, -1)
    if row_index is None:
        row_index = np.arange(rows.shape[0], dtype=np.int64)
        initial = np.reshape(initial, rows.shape)
    nib, dm, r, x, mx = encode_rows_packed(
        rows, np.ascontiguousarray(initial, dtype=np.float32),
        np.ascontiguousarray(row_index, dtype=np.int64), float(step))
    return {"perm_step": float(step), "perm_nib": nib, "perm_dm8": dm, "perm_mx": mx,
            "perm_r8": r, "perm_x": x}


def rows_from_state(d: dict[str, Any], initial: np.ndarray) -> np.ndarray:
    """The float32 rows coded by :func:`rows_state`'s fields ``d`` (or the first layout's);
    ValueError if they are missing or do not fit together or with ``initial``."""
    packed = "perm_nib" in d
    try:
        code = np.ascontiguousarray(d["perm_nib" if packed else "perm_code"])
        m = _m_of(d) if "perm_dm8" in d else np.ascontiguousarray(d["perm_m"])
        arrays = [m, *(np.ascontiguousarray(d[f"perm_{name}"])
                       for name in (("r8", "x") if packed else ("r", "x")))]
        step = float(d["perm_step"])
    except KeyError as exc:
        raise ValueError(f"missing {exc.args[0]!r}") from exc
    if code.dtype != np.uint8 or (code.shape != ((initial.size + 1) // 2,) if packed
                                  else code.shape != initial.shape):
        raise ValueError("permanence codes have the wrong shape")
    for arr, dtype in zip(arrays, (np.int16, np.int8 if packed else np.int16, np.int32),
                          strict=True):
        if arr.ndim != 1 or arr.dtype != dtype:
            raise ValueError("bad permanence arrays")
    if arrays[0].shape != arrays[1].shape:
        raise ValueError("permanence arrays do not fit together")
    rows = np.empty(initial.shape, dtype=np.float32)
    decode = decode_rows_packed if packed else decode_rows
    if not decode(code, arrays[0], arrays[1], arrays[2],
                  np.ascontiguousarray(initial, dtype=np.float32), step, rows):
        raise ValueError("permanence arrays do not fit together")
    return rows


def _m_of(d: dict[str, Any]) -> np.ndarray:
    """The int16 m per predicted entry of the state fields ``perm_dm8``/``perm_mx``
    (ValueError if they are not int8/int16 lists that fit together)."""
    changes, escaped = np.asarray(d["perm_dm8"]), np.asarray(d["perm_mx"])
    if changes.ndim != 1 or changes.dtype != np.int8 or escaped.ndim != 1 \
            or escaped.dtype != np.int16:
        raise ValueError("bad permanence arrays")
    m, ok = undelta_m(np.ascontiguousarray(changes), np.ascontiguousarray(escaped))
    if not ok:
        raise ValueError("permanence arrays do not fit together")
    return m


def index_small(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted distinct float32 values, uint8/uint16 index per element) or ``None`` when there
    are more than 65,536 distinct values."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    table, index, count = _index_bits(values.view(np.int32), 65536)
    if count < 0:
        return None
    dtype = np.uint8 if count <= 256 else np.uint16
    return table[:count].view(np.float32).copy(), index.astype(dtype)


@njit(cache=True)
def _index_bits(bits: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Sorted distinct bit patterns (by float value) and the index of each element, or count
    -1 beyond ``limit`` distinct values (an open-addressing hash table finds each value)."""
    size = 1
    while size < 2 * limit:
        size *= 2
    slots = np.full(size, -1, dtype=np.int32)
    table = np.empty(limit, dtype=np.int32)
    count = 0
    index = np.empty(bits.shape[0], dtype=np.int32)
    for i in range(bits.shape[0]):
        k, count = find_bits(bits[i], slots, table, count)
        if k < 0:
            return table, index, -1
        index[i] = k
    # sort the table by float value and remap the indices
    order = np.argsort(table[:count].view(np.float32), kind="mergesort")
    rank = np.empty(count, dtype=np.int32)
    for r in range(count):
        rank[order[r]] = r
    sorted_table = np.empty(count, dtype=np.int32)
    for r in range(count):
        sorted_table[r] = table[order[r]]
    for i in range(index.shape[0]):
        index[i] = rank[index[i]]
    return sorted_table, index, count


@njit(cache=True)
def find_bits(b: np.int32, slots: np.ndarray, table: np.ndarray, count: int) -> tuple[int, int]:
    """(position of the bit pattern ``b`` in ``table[:count]``, new count), found through the
    open-addressing hash ``slots`` (a power of two, at least twice the table's size) and
    added if absent; position -1 when it is absent and the table is full."""
    size = slots.shape[0]
    h = (np.int64(b) * np.int64(2654435761)) & (size - 1)
    while True:
        k = slots[h]
        if k < 0:
            if count == table.shape[0]:
                return -1, count
            table[count] = b
            slots[h] = count
            return count, count + 1
        if table[k] == b:
            return k, count
        h = (h + 1) & (size - 1)


def index_cells(cells: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct cells, index per element), both in the smallest unsigned type."""
    cells = np.ascontiguousarray(cells)
    used, index = _index_cells(cells, n_cells)
    return used.astype(_uint_for(n_cells)), index.astype(_uint_for(used.shape[0]))


@njit(cache=True)
def _index_cells(cells: np.ndarray, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
    rank = np.full(n_cells, -1, dtype=np.int64)
    for i in range(cells.shape[0]):
        rank[cells[i]] = 0
    count = 0
    for c in range(n_cells):
        if rank[c] == 0:
            rank[c] = count
            count += 1
    used = np.empty(count, dtype=np.int64)
    for c in range(n_cells):
        if rank[c] >= 0:
            used[rank[c]] = c
    index = np.empty(cells.shape[0], dtype=np.int64)
    for i in range(cells.shape[0]):
        index[i] = rank[cells[i]]
    return used, index


def _uint_for(count: int) -> type:
    """The smallest unsigned type holding values below ``count``."""
    return np.uint8 if count <= 256 else np.uint16 if count <= 65536 else np.uint32


@njit(cache=True)
def _predict(base: np.float32, m: np.int64, step: float, tmp: np.ndarray,
             tmp_bits: np.ndarray) -> np.int64:
    """The float32 value ``base + m * step`` (float64 arithmetic), as its int32 bit pattern
    (``tmp`` is a one-element float32 buffer, ``tmp_bits`` its int32 view)."""
    tmp[0] = np.float32(np.float64(base) + np.float64(m) * step)
    return np.int64(tmp_bits[0])


def encode_rows(rows: np.ndarray, initial: np.ndarray, step: float,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(code uint8 per entry, m int16 and distance int16 per predicted entry, int32
    exceptions) of float32 ``rows`` against the ``initial`` rows of the same shape: the first
    layout (still read, no longer written), converted from :func:`encode_rows_packed`'s."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n = rows.size
    packed, dms, rs, xs, mx = encode_rows_packed(
        rows.reshape(1, n), np.ascontiguousarray(initial, dtype=np.float32).reshape(1, n),
        np.zeros(1, dtype=np.int64), float(step))
    code = np.stack([packed & 15, packed >> 4], axis=1).ravel()[:n]
    m, _ = undelta_m(np.ascontiguousarray(dms), mx)
    # xs holds, in entry order, the bits of the raw entries and the escaped distances
    escaped = np.zeros(n, dtype=np.bool_)
    escaped[(code == FROM_INITIAL) | (code == FROM_ZERO)] = rs == R8_ESCAPE
    of_escaped = escaped[escaped | (code == RAW)]  # which of xs are distances
    distances = xs[of_escaped]
    in_int16 = (distances > R_ESCAPE) & (distances <= 32767)
    r = rs.astype(np.int16)
    r[rs == R8_ESCAPE] = np.where(in_int16, distances, R_ESCAPE)
    keep = np.ones(xs.shape[0], dtype=np.bool_)
    keep[np.flatnonzero(of_escaped)[in_int16]] = False
    return code.reshape(rows.shape), m, r, xs[keep]


@njit(cache=True)
def _decode_codes(flat_code: np.ndarray, ms: np.ndarray, rs: np.ndarray, xs: np.ndarray,
                  initial: np.ndarray, step: float, out: np.ndarray, escape: int) -> bool:
    """Fill float32 ``out`` from a code per entry (flat), the m and distances (``escape``: the
    distance is the next exception) of the predicted entries and the exceptions; False when
    they do not fit together (corrupt state)."""
    init = initial.ravel()
    bits = out.ravel().view(np.int32)
    tmp = np.ones(1, dtype=np.float32)
    tmp_bits = tmp.view(np.int32)
    one = tmp_bits[0]
    nm = 0
    nx = 0
    for i in range(flat_code.shape[0]):
        c = flat_code[i]
        if c == ZERO:
            bits[i] = 0
        elif c == ONE:
            bits[i] = one
        elif c == RAW:
            if nx >= xs.shape[0]:
                return False
            bits[i] = xs[nx]
            nx += 1
        elif c == FROM_INITIAL or c == FROM_ZERO:
            if nm >= ms.shape[0]:
                return False
            base = init[i] if c == FROM_INITIAL else np.float32(0.0)
            r = np.int64(rs[nm])
            if r == escape:
                if nx >= xs.shape[0]:
                    return False
                r = np.int64(xs[nx])
                nx += 1
            bits[i] = np.int32(_predict(base, np.int64(ms[nm]), step, tmp, tmp_bits) + r)
            nm += 1
        else:
            return False
    return bool(nm == ms.shape[0] and nx == xs.shape[0])


@njit(cache=True)
def decode_rows(code: np.ndarray, ms: np.ndarray, rs: np.ndarray, xs: np.ndarray,
                initial: np.ndarray, step: float, out: np.ndarray) -> bool:
    """Fill float32 ``out`` (shape of ``code``) from :func:`encode_rows`'s arrays; returns
    False when the arrays do not fit together (corrupt state)."""
    return _decode_codes(code.ravel(), ms, rs, xs, initial, step, out, R_ESCAPE)


@njit(cache=True)
def _best_code(value: float, b: np.int64, init_value: float, step: float,
               tmp: np.ndarray, tmp_bits: np.ndarray) -> tuple[int, np.int64, np.int64]:
    """(code, m, distance) of the entry of float64 ``value`` and int32 bit pattern ``b`` whose
    initial value is ``init_value``: the prediction (from the initial value, then from 0) of
    the smallest distance, RAW when neither fits; a distance from the initial value of at
    most ``_GOOD_ENOUGH`` units is kept without trying 0."""
    best_code = RAW
    best_m = np.int64(0)
    best_r = np.int64(0)
    if np.isfinite(value) and step > 0:
        for c in (FROM_INITIAL, FROM_ZERO):
            base = init_value if c == FROM_INITIAL else 0.0
            m = np.rint((value - base) / step)
            if abs(m) > _M_MAX:
                continue
            r = np.int64(b) - _predict(np.float32(base), np.int64(m), step, tmp, tmp_bits)
            if abs(r) > 2 ** 31 - 1:
                continue
            if best_code == RAW or abs(r) < abs(best_r):
                best_code, best_m, best_r = c, np.int64(m), r
            if best_code == FROM_INITIAL and abs(best_r) <= _GOOD_ENOUGH:
                break
    return best_code, best_m, best_r


@njit(cache=True, error_model="numpy")
def _predict_row(values: np.ndarray, init: np.ndarray, step: float, m_i: np.ndarray,
                 m_0: np.ndarray, pred_i: np.ndarray, pred_0: np.ndarray,
                 fits: np.ndarray) -> None:
    """Both predictions of every entry of the float32 row ``values`` (``step`` > 0): from
    ``init`` (``m_i``, ``pred_i``) and from 0 (``m_0``, ``pred_0``), m 0 where either does not
    fit in int16 (``fits`` False). No branches: the compiler vectorises the loop. Any m is
    exact (the distance corrects it), so the division by ``step`` is a multiplication by its
    reciprocal, taken once (m differs from the quotient's only where that is within rounding
    of a half)."""
    inverse = 1.0 / step
    for j in range(values.shape[0]):
        value = np.float64(values[j])
        base = np.float64(init[j])
        mi = np.rint((value - base) * inverse)
        m0 = np.rint(value * inverse)
        ok = (abs(mi) <= _M_MAX) & (abs(m0) <= _M_MAX)  # false for nan and inf
        mi = (mi if ok else 0.0) + 0.0  # (+ 0.0: never -0.0, as an integer m)
        m0 = (m0 if ok else 0.0) + 0.0
        pred_i[j] = np.float32(base + mi * step)  # as _predict
        pred_0[j] = np.float32(0.0 + m0 * step)
        m_i[j] = np.int32(mi)
        m_0[j] = np.int32(m0)
        fits[j] = ok


@njit(cache=True)
def encode_rows_packed(rows: np.ndarray, initial: np.ndarray, row_index: np.ndarray,
                       step: float,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(codes two per byte, m's change from the previous predicted entry as int8 and the
    distance as int8 per predicted entry, int32 exceptions, int16 m of the escaped changes)
    of float32 ``rows`` (2-D), row ``k`` against row ``row_index[k]`` of ``initial``; a
    distance from the initial value of at most ``_GOOD_ENOUGH`` units is kept without trying
    the prediction from 0.

    A row takes three passes, the first two without branches (a third of the entries are
    0.0, in no order a branch could predict; scalar code with branches took twice the time):
    both predictions of every entry (:func:`_predict_row`), each entry's code, m and distance
    (an entry whose predictions do not fit takes :func:`_best_code`'s search), then the
    predicted entries' m and distances and the exceptions listed in entry order. Last, the
    codes are packed and the m changes and int8 distances written."""
    n_rows, width = rows.shape
    n = n_rows * width
    bits = rows.view(np.int32)
    codes = np.empty(n + 1, dtype=np.uint8)
    mr = np.empty(n + 1, dtype=np.int64)  # m << 32 | r of the predicted entries
    xs = np.empty(n + 1, dtype=np.int32)
    pred_i = np.empty(width, dtype=np.float32)
    pred_0 = np.empty(width, dtype=np.float32)
    bits_i = pred_i.view(np.int32)
    bits_0 = pred_0.view(np.int32)
    m_i = np.zeros(width, dtype=np.int32)
    m_0 = np.zeros(width, dtype=np.int32)
    fits = np.zeros(width, dtype=np.bool_)
    row_m = np.empty(width, dtype=np.int32)
    row_r = np.empty(width, dtype=np.int32)
    row_odd = np.empty(width, dtype=np.bool_)  # the entries _best_code codes
    tmp = np.ones(1, dtype=np.float32)
    tmp_bits = tmp.view(np.int32)
    one = tmp_bits[0]
    wide = np.int64(2 ** 31 - 1)
    nm = 0
    nx = 0
    for row in range(n_rows):
        init = initial[row_index[row]]
        values = rows[row]
        if step > 0:
            _predict_row(values, init, step, m_i, m_0, pred_i, pred_0, fits)
        first = row * width
        odd_any = False
        for j in range(width):  # (selections as arithmetic on 0/1: no branches)
            b = np.int64(bits[row, j])
            coded = (b != 0) & (b != one)
            r_i = b - bits_i[j]
            r_0 = b - bits_0[j]
            zero = np.int64((abs(r_i) > _GOOD_ENOUGH) & (abs(r_0) < abs(r_i)))
            mi = np.int64(m_i[j])
            row_m[j] = mi + zero * (np.int64(m_0[j]) - mi)
            row_r[j] = r_i + zero * (r_0 - r_i)
            codes[first + j] = np.int64(coded) * (FROM_INITIAL + zero) + np.int64(b == one)
            odd = coded & ((not fits[j]) | (abs(r_i) > wide) | (abs(r_0) > wide))
            row_odd[j] = odd
            odd_any |= odd
        if odd_any:
            for j in range(width):
                if row_odd[j]:
                    code, m, r = _best_code(np.float64(values[j]), np.int64(bits[row, j]),
                                            np.float64(init[j]), step, tmp, tmp_bits)
                    codes[first + j] = code
                    row_m[j] = m
                    row_r[j] = r
        for j in range(width):  # the predicted entries' m and r, the exceptions, in order
            code = codes[first + j]
            predicted = (code == FROM_INITIAL) | (code == FROM_ZERO)
            r = row_r[j]
            mr[nm] = (np.int64(row_m[j]) << 32) | (np.int64(r) & 0xFFFFFFFF)
            nm += predicted
            if (code == RAW) | (predicted & ((r <= R8_ESCAPE) | (r > 127))):
                xs[nx] = bits[row, j] if code == RAW else r
                nx += 1
    packed = np.empty((n + 1) // 2, dtype=np.uint8)
    codes[n] = 0
    for k in range(packed.shape[0]):
        packed[k] = codes[2 * k] | (codes[2 * k + 1] << 4)
    dms = np.empty(nm, dtype=np.int8)
    rs = np.empty(nm, dtype=np.int8)
    mx = np.empty(nm + 1, dtype=np.int16)
    nmx = 0
    previous = np.int64(0)
    for k in range(nm):
        m = mr[k] >> 32
        dm = m - previous
        previous = m
        dm_escape = (dm <= M8_ESCAPE) | (dm > 127)
        dms[k] = M8_ESCAPE if dm_escape else dm
        distance = np.int32(mr[k] & 0xFFFFFFFF)
        rs[k] = R8_ESCAPE if (distance <= R8_ESCAPE) | (distance > 127) else distance
        mx[nmx] = m
        nmx += dm_escape
    return packed, dms, rs, xs[:nx].copy(), mx[:nmx].copy()


@njit(cache=True)
def undelta_m(dms: np.ndarray, mx: np.ndarray) -> tuple[np.ndarray, bool]:
    """The int16 m of every predicted entry from :func:`encode_rows_packed`'s changes ``dms``
    and escaped values ``mx``; False when they do not fit together (corrupt state)."""
    ms = np.empty(dms.shape[0], dtype=np.int16)
    m = np.int64(0)
    j = 0
    for i in range(dms.shape[0]):
        d = np.int64(dms[i])
        if d == M8_ESCAPE:
            if j >= mx.shape[0]:
                return ms, False
            m = np.int64(mx[j])
            j += 1
        else:
            m += d
            if abs(m) > _M_MAX:
                return ms, False
        ms[i] = m
    return ms, j == mx.shape[0]


@njit(cache=True)
def decode_rows_packed(packed: np.ndarray, ms: np.ndarray, rs: np.ndarray, xs: np.ndarray,
                       initial: np.ndarray, step: float, out: np.ndarray) -> bool:
    """Fill float32 ``out`` (shape of ``initial``) from :func:`encode_rows_packed`'s arrays;
    returns False when the arrays do not fit together (corrupt state)."""
    n = initial.size
    if n % 2 and packed[n >> 1] >> 4:
        return False
    codes = np.empty(n, dtype=np.uint8)
    for i in range(n):
        codes[i] = (packed[i >> 1] >> ((i & 1) * 4)) & 15
    return _decode_codes(codes, ms, rs, xs, initial, step, out, R8_ESCAPE)
