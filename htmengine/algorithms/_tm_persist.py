"""The backtracking TM's state at rest: packing the working arrays into a compact dict of
arrays (only live content, smallest exact integer types, synapses as flat ragged lists) and
building working arrays back from it; the state it saves.

At rest the synapses of the live segments are held in segment order as indices into tables of
their distinct values: ``syn_src_cells`` (the cells that feed a segment, a few thousand of
65,536) indexed by ``syn_src_index``, and ``syn_perm_values`` (a few dozen float32
permanences) indexed by the uint8 ``syn_perm_index`` (a flat float32 ``syn_perm`` when a TM has
more than 65,536 distinct permanences); a segment's cell and slot are not stored, they are read
from the cells' slot lists. That is version 3, cheap to pack at every model switch.

Version 4 (saved now, :func:`saved_state`) recodes the two indices with ``_syn_codec``: the
sources transposed (``syn_src_count`` the synapses each cell of ``syn_src_cells`` feeds,
``syn_src_gap``/``_gap_b``/``_gap_x`` the gaps between the segments it feeds; a pool with a
segment whose sources are not ascending keeps ``syn_src_index``) and the permanence index as
4-bit codes (``syn_perm_nib``, escapes ``syn_perm_nib_x``) into ``syn_perm_values`` reordered
most frequent first. Version 2 stored flat ``syn_src``/``syn_perm`` arrays and the segments'
cells and slots; version 1 (checkpoint format v1) stored ``seg_src``/``seg_perm`` rows padded
to the widest segment. All four are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from htmengine.algorithms import _tm_state as S
from htmengine.algorithms._codec import index_cells, index_small
from htmengine.algorithms._syn_codec import (
    nibble_index,
    transpose_sources,
    unnibble_index,
    untranspose_sources,
)
from htmengine.algorithms._tm_index import gather_synapses, index_pool
from htmengine.algorithms._tm_store import (
    compact_slots,
    list_orphans,
    load_pool,
    load_slots,
    mark_orphans,
    segment_owners,
)
from htmengine.algorithms.nupic_random import STATE_SIZE

TM_STATE_VERSION = 4
_SCALAR_PARAMS = ("numberOfCols", "cellsPerColumn", "initialPerm", "connectedPerm",
                  "minThreshold", "newSynapseCount", "permanenceInc", "permanenceDec",
                  "permanenceMax", "globalDecay", "activationThreshold", "doPooling",
                  "segUpdateValidDuration", "burnIn", "seed", "pamLength", "maxInfBacktrack",
                  "maxLrnBacktrack", "maxAge", "maxSeqLength", "maxSegmentsPerCell",
                  "maxSynapsesPerSegment", "outputType")
_SEG_SCALARS = tuple(name for name in S.SEG_FIELDS if name not in ("seg_src", "seg_perm"))
# the segment fields a state holds (a segment's cell and slot are read from the slot lists)
_SEG_STORED = tuple(name for name in _SEG_SCALARS if name not in ("seg_cell", "seg_slot"))
_TRANSPOSED = ("syn_src_count", "syn_src_gap", "syn_src_gap_b", "syn_src_gap_x")
_QUEUE = ("q_cell", "q_seg", "q_seq", "q_time", "q_n", "q_syn")
_STORAGE_ONLY_SC = (S.SC_SLOT_TOP, S.SC_BLK_HIGH, S.SC_BLK_NFREE, S.SC_NTS0, S.SC_NTC0,
                    S.SC_NTS1, S.SC_NTC1)


def narrow(arr: np.ndarray) -> np.ndarray:
    """``arr`` in the smallest integer type holding all its values exactly (floats and bools
    unchanged)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iu":
        return arr
    if arr.size == 0:
        return arr.astype(np.uint8)
    dtype = np.result_type(np.min_scalar_type(arr.min()), np.min_scalar_type(arr.max()))
    return arr.astype(dtype) if dtype != arr.dtype else arr


def pack_params(params: dict[str, Any]) -> dict[str, Any]:
    """The TM's constructor parameters as ``param_*`` scalars."""
    return {f"param_{name}": (int(params[name]) if isinstance(params[name], bool)
                              else params[name]) for name in _SCALAR_PARAMS}


def params_from_state(d: dict[str, Any]) -> dict[str, Any]:
    """Constructor parameters stored by :func:`pack_params` (ValueError if missing)."""
    try:
        version = int(_plain(d["tm_version"]))
        if version not in (1, 2, 3, TM_STATE_VERSION):
            raise ValueError(f"unsupported backtracking TM state version {version}")
        params = {name: _plain(d[f"param_{name}"]) for name in _SCALAR_PARAMS}
    except KeyError as exc:
        raise ValueError(f"backtracking TM state misses {exc.args[0]!r}") from exc
    params["doPooling"] = bool(params["doPooling"])
    return params


def pack_state(params: dict[str, Any], a: S.TMArrays) -> dict[str, Any]:
    """The state held in the working arrays ``a`` as ``{name: array | scalar}``, in the form
    kept at rest (see the module doc; :func:`saved_state` makes the saved form)."""
    d: dict[str, Any] = {"tm_version": TM_STATE_VERSION, **pack_params(params)}
    high = int(a.sc[S.SC_SEG_HIGH])
    nfree = int(a.sc[S.SC_SEG_NFREE])
    indexed = index_pool(a)
    if indexed is None:
        src, perm = gather_synapses(a.seg_src, a.seg_perm, a.seg_n, high)
        d.update(_indexed_synapses(src, perm, a.nslots.shape[0]))
    else:
        cells, index, values, value_index = indexed
        d.update(syn_src_cells=cells, syn_src_index=index, syn_perm_values=values,
                 syn_perm_index=value_index)
    for name in _SEG_STORED:
        d[name] = narrow(getattr(a, name)[:high].copy())
    d["seg_free"] = narrow(a.seg_free[:nfree].copy())
    d["orphans"] = narrow(list_orphans(a))
    slot_off = a.slot_off.copy()
    slot_cap = a.slot_cap.copy()
    slots, top = compact_slots(slot_off, slot_cap, a.nslots, a.slots, 0)
    d["nslots"] = narrow(a.nslots)
    d["slots"] = narrow(slots[:top])
    d["sc"] = a.sc.copy()
    d["sc"][list(_STORAGE_ONLY_SC)] = 0  # layout of rebuilt structures, not model state
    for name in ("fs", "rng_state", "rng_ptrs"):
        d[name] = getattr(a, name).copy()
    counts = a.st_cnt[:S.SAVED_STATES]
    d["state_counts"] = narrow(counts)
    d["state_cells"] = narrow(np.concatenate(
        [a.st_list[k, :counts[k]] for k in range(S.SAVED_STATES)]))
    d["colconf"] = a.colconf.copy()
    qlen = int(a.sc[S.SC_QLEN])
    for name in _QUEUE:
        d[name] = getattr(a, name)[:qlen].copy()
    # past its count an update's row holds whatever the working arrays held (not read)
    d["q_syn"][np.arange(d["q_syn"].shape[1]) >= d["q_n"][:, None]] = 0
    for name in _QUEUE:
        d[name] = narrow(d[name])
    for hist, lens, count in (("inf_hist", "inf_len", S.SC_INF_HN),
                              ("lrn_hist", "lrn_len", S.SC_LRN_HN)):
        n = int(a.sc[count])
        lengths = getattr(a, lens)[:n]
        d[lens] = narrow(lengths)
        d[hist] = narrow(np.concatenate(
            [getattr(a, hist)[r, :lengths[r]] for r in range(n)] or
            [np.zeros(0, dtype=np.int32)]))
    return d


def state_nbytes(d: dict[str, Any]) -> int:
    """Bytes of the arrays of a packed state."""
    return sum(v.nbytes for v in d.values() if isinstance(v, np.ndarray))


def saved_state(rest: dict[str, Any]) -> dict[str, Any]:
    """The state to save (version 4) of a state at rest: the same fields, the synapses'
    source indices transposed unless a segment's are not ascending, the permanence index as
    4-bit codes into the table reordered most frequent first."""
    d = dict(rest)
    d["tm_version"] = TM_STATE_VERSION
    transposed = transpose_sources(d["syn_src_index"], d["seg_n"],
                                   d["syn_src_cells"].shape[0])
    if transposed is not None:
        del d["syn_src_index"]
        d.update(zip(_TRANSPOSED, transposed, strict=True))
    if "syn_perm_index" in d:
        values = d.pop("syn_perm_values")
        order, d["syn_perm_nib"], d["syn_perm_nib_x"] = nibble_index(d.pop("syn_perm_index"),
                                                                     values.shape[0])
        d["syn_perm_values"] = values[order]
    return d


def _saved_synapses(d: dict[str, Any], seg_n: np.ndarray) -> dict[str, Any]:
    """The fields kept at rest of the synapses of a saved version-4 state (ValueError if
    they do not fit together or with the segment sizes ``seg_n``)."""
    out = {"syn_src_cells": np.asarray(d["syn_src_cells"])}
    if "syn_src_index" in d:
        out["syn_src_index"] = np.asarray(d["syn_src_index"])
    else:
        counts, gaps, small, wide = (np.asarray(d[name]) for name in _TRANSPOSED)
        index = None
        if counts.shape == out["syn_src_cells"].shape and all(
                arr.ndim == 1 and arr.dtype.kind in "iu" for arr in (counts, gaps, small, wide)):
            index = untranspose_sources(counts, gaps, small, wide, seg_n)
        if index is None:
            raise ValueError("backtracking TM state: the synapse sources do not fit the "
                             "segment sizes")
        out["syn_src_index"] = index
    if "syn_perm" in d:
        out["syn_perm"] = np.asarray(d["syn_perm"], dtype=np.float32)
        return out
    values = np.asarray(d["syn_perm_values"], dtype=np.float32)
    packed, escapes = np.asarray(d["syn_perm_nib"]), np.asarray(d["syn_perm_nib_x"])
    value_index = None
    if values.ndim == 1 and escapes.ndim == 1 and escapes.dtype.kind in "iu":
        value_index = unnibble_index(packed, escapes, int(seg_n.sum()), values.shape[0])
    if value_index is None:
        raise ValueError("backtracking TM state: bad synapse permanence codes")
    out["syn_perm_values"], out["syn_perm_index"] = values, value_index
    return out


def _indexed_synapses(src: np.ndarray, perm: np.ndarray, n_cells: int) -> dict[str, Any]:
    """The fields kept at rest (version 3's) of the synapses with sources ``src`` and
    permanences ``perm``."""
    cells, index = index_cells(src, n_cells)
    d = {"syn_src_cells": cells, "syn_src_index": index}
    coded = index_small(perm)
    if coded is None:
        d["syn_perm"] = np.asarray(perm, dtype=np.float32)
    else:
        d["syn_perm_values"], d["syn_perm_index"] = coded
    return d


def _synapse_tables(d: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cells, cell index, permanence values, permanence index) of a state at rest."""
    if "syn_perm_index" in d:
        values, value_index = d["syn_perm_values"], d["syn_perm_index"]
    else:
        values = d["syn_perm"]
        value_index = np.arange(values.shape[0], dtype=np.int64)
    return d["syn_src_cells"], d["syn_src_index"], values, value_index


def _ragged_synapses(d: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(sources, permanences) of the live synapses in segment order, from versions 1 and 2."""
    if "syn_src" in d:
        return np.asarray(d["syn_src"]), np.asarray(d["syn_perm"], dtype=np.float32)
    src = np.asarray(d["seg_src"])
    perm = np.asarray(d["seg_perm"], dtype=np.float32)
    seg_n = np.asarray(d["seg_n"], dtype=np.int64)
    if src.ndim != 2 or perm.shape != src.shape or src.shape[0] != seg_n.shape[0] \
            or (seg_n.size and int(seg_n.max()) > src.shape[1]):
        raise ValueError("backtracking TM state has inconsistent segment rows")
    mask = np.arange(src.shape[1]) < seg_n[:, None]
    return src[mask], perm[mask]


def check_state(ip: S.Int64s, d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with every field present and in range for a TM with integer parameters ``ip``
    (the kernels do not check indices); ValueError naming the first inconsistency."""
    n_cols = int(ip[S.IP_NCOLS])
    n_cells = n_cols * int(ip[S.IP_CPC])
    width = int(ip[S.IP_W])
    try:
        out = {name: np.asarray(d[name]) for name in (
            *_SEG_STORED, "seg_free", "nslots", "slots", "sc", "fs", "rng_state", "rng_ptrs",
            "state_counts", "state_cells", "colconf", *_QUEUE, "inf_hist", "inf_len",
            "lrn_hist", "lrn_len")}
        saved = None
        if int(_plain(d["tm_version"])) == TM_STATE_VERSION:
            names = ["syn_src_cells", *(("syn_src_index",) if "syn_src_index" in d
                                        else _TRANSPOSED),
                     *(("syn_perm",) if "syn_perm" in d
                       else ("syn_perm_values", "syn_perm_nib", "syn_perm_nib_x"))]
            saved = {name: d[name] for name in names}
            old_owners = None
        elif "syn_src_index" in d:
            out["syn_src_cells"] = np.asarray(d["syn_src_cells"])
            out["syn_src_index"] = np.asarray(d["syn_src_index"])
            if "syn_perm_index" in d:
                out["syn_perm_values"] = np.asarray(d["syn_perm_values"], dtype=np.float32)
                out["syn_perm_index"] = np.asarray(d["syn_perm_index"])
            else:
                out["syn_perm"] = np.asarray(d["syn_perm"], dtype=np.float32)
            old_owners = None
        else:
            src, perm = _ragged_synapses(d)
            if src.size and (src.dtype.kind not in "iu" or int(src.min()) < 0
                             or int(src.max()) >= n_cells):
                raise ValueError("backtracking TM state: synapse source out of range")
            out.update(_indexed_synapses(src, perm, n_cells))
            old_owners = np.asarray(d["seg_cell"]), np.asarray(d["seg_slot"])
        out["orphans"] = np.asarray(d.get("orphans", np.zeros((0, 2), dtype=np.int32)))
    except KeyError as exc:
        raise ValueError(f"backtracking TM state misses {exc.args[0]!r}") from exc

    def require(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"backtracking TM state: {what}")

    def in_range(arr: np.ndarray, low: int, high: int) -> bool:
        return arr.size == 0 or (int(arr.min()) >= low and int(arr.max()) < high)

    sc = out["sc"]
    require(sc.shape == (S.N_SC,), "bad scalar block")
    high, nfree = int(sc[S.SC_SEG_HIGH]), int(sc[S.SC_SEG_NFREE])
    require(0 <= nfree <= high < 2 ** 31, "bad segment counts")
    for name in _SEG_STORED:
        require(out[name].shape == (high,), f"{name} has the wrong length")
    seg_n = out["seg_n"].astype(np.int64)
    require(in_range(seg_n, 0, width + 1), "segment sizes out of range")
    n_syn = int(seg_n.sum())
    if saved is not None:
        out.update(_saved_synapses(saved, seg_n))
    cells, index = out["syn_src_cells"], out["syn_src_index"]
    require(cells.dtype.kind in "iu" and index.dtype.kind in "iu"
            and out.get("syn_perm_index", index).dtype.kind in "iu", "bad synapse index type")
    require(cells.ndim == 1 and in_range(cells, 0, n_cells), "synapse source out of range")
    require(index.shape == (n_syn,) and in_range(index, 0, cells.shape[0]),
            "synapse count does not match the segment sizes or bad source index")
    if "syn_perm_index" in out:
        require(out["syn_perm_values"].ndim == 1 and out["syn_perm_index"].shape == (n_syn,)
                and in_range(out["syn_perm_index"], 0, out["syn_perm_values"].shape[0]),
                "bad synapse permanence index")
    else:
        require(out["syn_perm"].shape == (n_syn,), "synapse count does not match the "
                                                   "segment sizes")
    require(out["seg_free"].shape == (nfree,) and in_range(out["seg_free"], 0, high),
            "bad free segment list")
    require(out["nslots"].shape == (n_cells,) and in_range(out["nslots"], 0, 2 ** 31),
            "bad slot counts")
    require(int(out["nslots"].astype(np.int64).sum()) == out["slots"].shape[0],
            "inconsistent segment slots")
    require(in_range(out["slots"], -2 ** 62, high), "slot entry out of range")
    seg_cell, seg_slot, live = segment_owners(out["nslots"].astype(np.int64),
                                              out["slots"].astype(np.int64), high)
    require(live == high - nfree, "the slot lists do not hold every live segment once")
    if old_owners is not None:
        require(np.array_equal(old_owners[0], seg_cell)
                and np.array_equal(old_owners[1], seg_slot),
                "segment cells or slots do not match the slot lists")
    orphans = out["orphans"].reshape(-1, 2) if out["orphans"].size else \
        np.zeros((0, 2), dtype=np.int32)
    require(in_range(orphans[:, 0], 0, n_cells) and in_range(orphans[:, 1], 0, high),
            "orphan synapse out of range")
    out["orphans"] = orphans
    require(out["fs"].shape == (S.N_FS,) and out["rng_ptrs"].shape == (2,)
            and out["rng_state"].shape == (STATE_SIZE,)
            and out["colconf"].shape == (2, n_cols), "bad confidences or RNG state")
    counts = out["state_counts"].astype(np.int64)
    require(counts.shape == (S.SAVED_STATES,) and in_range(counts, 0, n_cells + 1)
            and int(counts.sum()) == out["state_cells"].shape[0]
            and in_range(out["state_cells"], 0, n_cells), "bad cell states")
    qlen = int(sc[S.SC_QLEN])
    for name in _QUEUE:
        require(out[name].shape[:1] == (qlen,), f"{name} has the wrong length")
    require(out["q_syn"].ndim == 2 and out["q_syn"].shape[1] <= width
            and in_range(out["q_syn"], 0, n_cells) and in_range(out["q_n"], 0, width + 1)
            and in_range(out["q_cell"], 0, n_cells), "bad queued segment update")
    for hist, lens, count, cap in (("inf_hist", "inf_len", S.SC_INF_HN, S.IP_MAX_INF_BT),
                                   ("lrn_hist", "lrn_len", S.SC_LRN_HN, S.IP_MAX_LRN_BT)):
        lengths = out[lens].astype(np.int64)
        require(lengths.shape == (int(sc[count]),) and lengths.shape[0] <= int(ip[cap]) + 1
                and in_range(lengths, 0, n_cols + 1)
                and int(lengths.sum()) == out[hist].shape[0]
                and in_range(out[hist], 0, n_cols), f"bad {hist}")
    for name, value in out.items():
        if name != "sc":
            out[name] = narrow(value)
    return out


def arrays_from_state(ip: S.Int64s, fp: S.Float32s, d: dict[str, Any],
                      spare: S.TMArrays | None = None) -> S.TMArrays:
    """Working arrays holding the state ``d`` (as returned by :func:`check_state`).

    ``spare``, the working arrays another TM of the same parameters dropped, is reused when
    its pools are large enough: only what this state uses is rewritten, and what the kernels
    read without a count (activity flags, cell states, the pools' rows past their high-water
    marks) is cleared, which spares allocating and faulting in megabytes per model switch."""
    sc = d["sc"]
    high = int(sc[S.SC_SEG_HIGH])
    n_syn = int(d["syn_src_index"].shape[0])
    n_slots = int(d["slots"].shape[0])
    n_sources = int(d["syn_src_cells"].shape[0])
    a = _reused(spare, ip, high, n_syn, n_sources) if spare is not None else None
    old_blocks = 0 if a is None else int(a.sc[S.SC_BLK_HIGH])
    if a is None:
        a = _fresh(ip, high, n_syn, n_sources)
    if a.slots.shape[0] < n_slots + S.SLOT_ROOM:
        a = a._replace(slots=np.zeros(n_slots + S.SLOT_ROOM, dtype=np.int64))
    a = a._replace(fp=fp, rng_state=np.asarray(d["rng_state"], dtype=np.uint32).copy(),
                   rng_ptrs=np.asarray(d["rng_ptrs"], dtype=np.int64).copy())
    for name in _SEG_STORED:
        getattr(a, name)[:high] = d[name]
    load_slots(d["nslots"], d["slots"], high, a.slot_off, a.slot_cap, a.nslots, a.slots,
               a.seg_cell, a.seg_slot)
    a.seg_free[:d["seg_free"].shape[0]] = d["seg_free"]
    a.sc[:] = sc
    a.sc[S.SC_SLOT_TOP] = n_slots
    for index in _STORAGE_ONLY_SC[1:]:
        a.sc[index] = 0
    load_pool(a.seg_src, a.seg_perm, a.seg_n, high, *_synapse_tables(d), a.fp[S.FP_CONN], a.sc,
              a.out_head, a.out_tail, a.out_cnt, a.blk, a.blk_next, a.blk_prev, a.blk_free)
    a.blk[int(a.sc[S.SC_BLK_HIGH]):old_blocks] = 0  # as a fresh pool (see _reused)
    a.fs[:] = d["fs"]
    counts = d["state_counts"].astype(np.int64)
    cells = d["state_cells"]
    pos = 0
    for k in range(S.SAVED_STATES):
        n = int(counts[k])
        a.st_list[k, :n] = cells[pos:pos + n]
        a.st_flags[k, cells[pos:pos + n]] = 1
        a.st_cnt[k] = n
        pos += n
    a.colconf[:] = d["colconf"]
    qlen = int(sc[S.SC_QLEN])
    for name in _QUEUE:
        if name == "q_syn":
            a.q_syn[:qlen, :d["q_syn"].shape[1]] = d["q_syn"]
        else:
            getattr(a, name)[:qlen] = d[name]
    for hist, lens in (("inf_hist", "inf_len"), ("lrn_hist", "lrn_len")):
        lengths = d[lens].astype(np.int64)
        flat = d[hist]
        pos = 0
        for r, m in enumerate(lengths):
            getattr(a, hist)[r, :m] = flat[pos:pos + m]
            getattr(a, lens)[r] = m
            pos += int(m)
    mark_orphans(a, d["orphans"].astype(np.int32))
    return S.reserve(a, 0)


def _pool_sizes(high: int, n_syn: int, n_sources: int) -> tuple[int, int]:
    """(segment rows, blocks) the working arrays of a state with ``high`` segment rows and
    ``n_syn`` synapses from ``n_sources`` source cells need: a source's chain of ``n``
    entries takes ``ceil(n / BLOCK)`` blocks, fewer than ``n / BLOCK + 1``."""
    cap = S.SEG_CAP
    while cap < high + 1:
        cap *= 2
    return cap, max(n_syn // S.BLOCK + n_sources + 64, S.BLK_CAP)


def _fresh(ip: S.Int64s, high: int, n_syn: int, n_sources: int) -> S.TMArrays:
    """New working arrays (parameters ``ip``) sized for a state of ``high`` segment rows and
    ``n_syn`` synapses from ``n_sources`` source cells, with twice the blocks that needs (room
    to learn: the next, larger states reuse them); the parameters and RNG are set by the
    caller."""
    cap, n_blocks = _pool_sizes(high, n_syn, n_sources)
    return S.allocate(ip, np.zeros(S.N_FP, dtype=np.float32), np.zeros(0, dtype=np.uint32),
                      np.zeros(2, dtype=np.int64), seg_cap=cap, blk_cap=2 * n_blocks)


def _reused(spare: S.TMArrays, ip: S.Int64s, high: int, n_syn: int,
            n_sources: int) -> S.TMArrays | None:
    """``spare`` cleared for a state of ``high`` segment rows and ``n_syn`` synapses from
    ``n_sources`` source cells (its scalars still the previous TM's), or None if its pools are
    too small or its parameters differ."""
    cap, n_blocks = _pool_sizes(high, n_syn, n_sources)
    if (spare.seg_n.shape[0] < cap or spare.blk.shape[0] < n_blocks
            or not np.array_equal(spare.ip, ip)):
        return None
    clear_to = max(high, int(spare.sc[S.SC_SEG_HIGH]))
    for name in _SEG_SCALARS:
        getattr(spare, name)[high:clear_to] = -1 if name in ("seg_cell", "seg_slot") else 0
    # the activity flags are cleared lazily through the touched lists, whose counts restart
    for name in ("act", "act_conn", "cell_act", "st_flags", "st_cnt", "inf_len", "lrn_len",
                 "col_flags", "scratch_cells"):
        getattr(spare, name)[:] = 0
    return spare


def _plain(value: Any) -> Any:
    """numpy scalars / 0-d arrays (as loaded from a checkpoint) to Python scalars."""
    if isinstance(value, np.ndarray):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value
