"""Saving and loading the backtracking TM's state as a flat dict of arrays and scalars."""

from __future__ import annotations

import numpy as np

from htmengine.algorithms import _tm_state as S
from htmengine.algorithms._tm_store import (
    compact_slots,
    list_orphans,
    mark_orphans,
    rebuild_out_synapses,
)

_VERSION = 1
_SCALAR_PARAMS = ("numberOfCols", "cellsPerColumn", "initialPerm", "connectedPerm",
                  "minThreshold", "newSynapseCount", "permanenceInc", "permanenceDec",
                  "permanenceMax", "globalDecay", "activationThreshold", "doPooling",
                  "segUpdateValidDuration", "burnIn", "seed", "pamLength", "maxInfBacktrack",
                  "maxLrnBacktrack", "maxAge", "maxSeqLength", "maxSegmentsPerCell",
                  "maxSynapsesPerSegment", "outputType")


def pack_state(tm) -> dict:
    """The TM's state as ``{name: array | scalar}`` (only live data is stored)."""
    a = tm._a
    d: dict = {"tm_version": _VERSION}
    for name in _SCALAR_PARAMS:
        value = tm._params[name]
        d[f"param_{name}"] = int(value) if isinstance(value, bool) else value
    high = int(a.sc[S.SC_SEG_HIGH])
    nfree = int(a.sc[S.SC_SEG_NFREE])
    used = int(a.seg_n[:high].max()) if high else 0
    for name in S.SEG_FIELDS:
        arr = getattr(a, name)[:high]
        d[name] = (arr[:, :used] if arr.ndim == 2 else arr).copy()  # only used synapse slots
    d["seg_free"] = a.seg_free[:nfree].copy()
    d["orphans"] = list_orphans(a)
    slot_off = a.slot_off.copy()
    slot_cap = a.slot_cap.copy()
    slots, top = compact_slots(slot_off, slot_cap, a.nslots, a.slots, 0)
    d["nslots"] = a.nslots.copy()
    d["slots"] = slots[:top]
    for name in ("sc", "fs", "rng_state", "rng_ptrs"):
        d[name] = getattr(a, name).copy()
    for storage_only in (S.SC_SLOT_TOP, S.SC_BLK_HIGH, S.SC_BLK_NFREE, S.SC_NTS0, S.SC_NTC0,
                         S.SC_NTS1, S.SC_NTC1):
        d["sc"][storage_only] = 0  # layout of rebuilt structures, not model state
    counts = a.st_cnt[:S.SAVED_STATES].copy()
    d["state_counts"] = counts
    d["state_cells"] = np.concatenate(
        [a.st_list[k, :counts[k]] for k in range(S.SAVED_STATES)]).astype(np.int32)
    d["colconf"] = a.colconf.copy()
    qlen = int(a.sc[S.SC_QLEN])
    for name in ("q_cell", "q_seg", "q_seq", "q_time", "q_n", "q_syn"):
        d[name] = getattr(a, name)[:qlen].copy()
    for hist, lens, count in (("inf_hist", "inf_len", S.SC_INF_HN),
                              ("lrn_hist", "lrn_len", S.SC_LRN_HN)):
        n = int(a.sc[count])
        lengths = getattr(a, lens)[:n].copy()
        d[lens] = lengths
        d[hist] = np.concatenate(
            [getattr(a, hist)[r, :lengths[r]] for r in range(n)] or
            [np.zeros(0, dtype=np.int32)]).astype(np.int32)
    return d


def unpack_state(cls, d: dict):
    """A new ``cls`` instance holding the state packed by :func:`pack_state`."""
    try:
        version = int(d["tm_version"])
        if version != _VERSION:
            raise ValueError(f"unsupported backtracking TM state version {version}")
        params = {name: _plain(d[f"param_{name}"]) for name in _SCALAR_PARAMS}
    except KeyError as exc:
        raise ValueError(f"backtracking TM state misses {exc.args[0]!r}") from exc
    params["doPooling"] = bool(params["doPooling"])
    tm = cls(**params)
    a = tm._a
    try:
        sc = np.asarray(d["sc"], dtype=np.int64)
        high = int(sc[S.SC_SEG_HIGH])
        a = S.reserve(a, 0)
        cap = a.seg_n.shape[0]
        while cap < high + 1:
            cap *= 2
        updates = {}
        for name in S.SEG_FIELDS + ("seg_free",):
            arr = getattr(a, name)
            fill = -1 if name in ("seg_cell", "seg_slot") else 0
            new = np.full((cap,) + arr.shape[1:], fill, dtype=arr.dtype)
            src = np.asarray(d[name], dtype=arr.dtype)
            if src.ndim == 2:  # states saved with narrower synapse rows
                new[:src.shape[0], :src.shape[1]] = src
            else:
                new[:src.shape[0]] = src
            updates[name] = new
        updates["act"] = np.zeros((2, cap), dtype=np.uint8)
        updates["act_conn"] = np.zeros((2, cap), dtype=np.uint8)
        updates["touched_segs"] = np.zeros((2, cap), dtype=np.int32)
        nslots = np.asarray(d["nslots"], dtype=np.int32)
        slots = np.asarray(d["slots"], dtype=np.int64)
        if nslots.shape != a.nslots.shape or int(nslots.sum()) != slots.shape[0]:
            raise ValueError("backtracking TM state has inconsistent segment slots")
        a.nslots[:] = nslots
        offsets = np.concatenate([[0], np.cumsum(nslots)[:-1]]).astype(np.int64)
        a.slot_off[:] = np.where(nslots > 0, offsets, -1)
        a.slot_cap[:] = nslots
        updates["slots"] = np.concatenate([slots, np.zeros(8192, dtype=np.int64)])
        a = a._replace(**updates)
        a.sc[:] = sc
        a.sc[S.SC_SLOT_TOP] = slots.shape[0]
        for name in (S.SC_NTS0, S.SC_NTC0, S.SC_NTS1, S.SC_NTC1):
            a.sc[name] = 0
        a.fs[:] = np.asarray(d["fs"], dtype=np.float32)
        a.rng_state[:] = np.asarray(d["rng_state"], dtype=np.uint32)
        a.rng_ptrs[:] = np.asarray(d["rng_ptrs"], dtype=np.int64)
        counts = np.asarray(d["state_counts"], dtype=np.int64)
        cells = np.asarray(d["state_cells"], dtype=np.int32)
        pos = 0
        for k in range(S.SAVED_STATES):
            n = int(counts[k])
            a.st_list[k, :n] = cells[pos:pos + n]
            a.st_flags[k, cells[pos:pos + n]] = 1
            a.st_cnt[k] = n
            pos += n
        a.colconf[:] = np.asarray(d["colconf"], dtype=np.float32)
        qlen = int(sc[S.SC_QLEN])
        for name in ("q_cell", "q_seg", "q_seq", "q_time", "q_n", "q_syn"):
            getattr(a, name)[:qlen] = np.asarray(d[name])
        for hist, lens in (("inf_hist", "inf_len"), ("lrn_hist", "lrn_len")):
            lengths = np.asarray(d[lens], dtype=np.int32)
            flat = np.asarray(d[hist], dtype=np.int32)
            pos = 0
            for r, m in enumerate(lengths):
                getattr(a, hist)[r, :m] = flat[pos:pos + m]
                getattr(a, lens)[r] = m
                pos += int(m)
    except KeyError as exc:
        raise ValueError(f"backtracking TM state misses {exc.args[0]!r}") from exc
    n_blocks = int(np.asarray(d["seg_n"], dtype=np.int64).sum()) + 64
    if a.blk.shape[0] < n_blocks:
        a = a._replace(blk=np.zeros((n_blocks, S.BLOCK), dtype=np.int32),
                       blk_next=np.full(n_blocks, -1, dtype=np.int32),
                       blk_prev=np.full(n_blocks, -1, dtype=np.int32),
                       blk_free=np.zeros(n_blocks, dtype=np.int32))
    rebuild_out_synapses(a)
    if "orphans" in d:
        mark_orphans(a, np.asarray(d["orphans"], dtype=np.int32).reshape(-1, 2))
    tm._a = S.reserve(a, 0)
    return tm


def _plain(value):
    """numpy scalars / 0-d arrays (as loaded from npz) to Python scalars."""
    if isinstance(value, np.ndarray):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    return value
