"""Storage layout of the backtracking temporal memory (plain numpy arrays).

Everything the numba kernels touch lives in one ``TMArrays`` namedtuple of numpy arrays:

* a segment pool (one row per live segment: source cells, permanences and the Cells4
  bookkeeping counters) with a free-id stack, grown by doubling;
* per cell an ordered list of segment *slots* (Cells4's per-cell segment vector, where a
  released segment leaves an empty slot that is reused last-released-first).  The slot lists
  live in one flat pool; a cell's list is moved to a chunk twice as large when it fills up;
  a slot entry is a pool id (>= 0) or, for an empty slot, ``-(release order) - 1``;
* per source cell the list of segments it feeds (Cells4's ``OutSynapses``) kept as chains of
  fixed-size blocks, used for forward propagation of activity;
* the cell states (dense flags + list of set cells), column confidences, the queue of
  pending segment updates and the input histories used for backtracking.

The Python class grows the pools between steps so that one step can never run out of room.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

BLOCK = 16  # out-synapse entries per block
SEG_CAP, BLK_CAP = 1024, 4096  # initial segment rows and out-synapse blocks
SLOT_ROOM = 8192  # free segment slots at the end of the slot pool of a fresh working set
# The indices below are numpy scalars, not Python ints: numba types a Python int (or bool)
# constant passed to a jitted function as a literal and compiles one specialization per
# value; numpy scalars are plain int64/bool, so each kernel is compiled once.
_i = np.int64
YES, NO = np.bool_(True), np.bool_(False)  # non-literal flags for kernel arguments
BANK_0, BANK_1 = _i(0), _i(1)  # activity banks of forward_propagate
MINUS_ONE, ZERO, ONE = _i(-1), _i(0), _i(1)

# --- integer parameters (ip) ---
IP_NCOLS, IP_CPC, IP_ACT_THR, IP_MIN_THR = _i(0), _i(1), _i(2), _i(3)
IP_NEW_SYN, IP_SEG_UPD_VALID, IP_PAM_LEN, IP_MAX_INF_BT = _i(4), _i(5), _i(6), _i(7)
IP_MAX_LRN_BT, IP_MAX_SEQ_LEN, IP_MAX_SEGS, IP_MAX_SYNS = _i(8), _i(9), _i(10), _i(11)
IP_DO_POOLING, IP_W = _i(12), _i(13)
N_IP = _i(14)
# --- float32 parameters (fp) ---
FP_INIT, FP_CONN, FP_MAX, FP_DEC, FP_INC = _i(0), _i(1), _i(2), _i(3), _i(4)
N_FP = _i(5)
# --- integer scalars (sc) ---
SC_NLRN, SC_NITER, SC_PAM, SC_LSEQ, SC_RESET = _i(0), _i(1), _i(2), _i(3), _i(4)
SC_SEG_HIGH, SC_SEG_NFREE, SC_BLK_HIGH = _i(5), _i(6), _i(7)
SC_BLK_NFREE, SC_SLOT_TOP = _i(8), _i(9)
SC_REL_CTR, SC_QLEN, SC_INF_HN, SC_LRN_HN = _i(10), _i(11), _i(12), _i(13)
# touched segments / cells per bank
SC_NTS0, SC_NTC0, SC_NTS1, SC_NTC1 = _i(14), _i(15), _i(16), _i(17)
N_SC = _i(18)
# --- float32 scalars (fs) ---
FS_AVG_DENSITY, FS_AVG_LSEQ = _i(0), _i(1)
N_FS = _i(2)
# --- cell states ---
INF_ACT_T, INF_ACT_T1, INF_PRED_T, INF_PRED_T1 = _i(0), _i(1), _i(2), _i(3)
LRN_ACT_T, LRN_ACT_T1, LRN_PRED_T, LRN_PRED_T1 = _i(4), _i(5), _i(6), _i(7)
INF_ACT_BACKUP, INF_PRED_BACKUP = _i(8), _i(9)
N_STATES = _i(10)
SAVED_STATES = _i(8)  # the first eight persist across steps
# --- column confidence rows ---
CONF_T, CONF_T1 = _i(0), _i(1)

SEG_FIELDS = ("seg_src", "seg_perm", "seg_n", "seg_nconn", "seg_cell", "seg_slot",
              "seg_total", "seg_pos", "seg_last_active", "seg_dc", "seg_dc_iter", "seg_seq")

# numpy array types of the fields below (the dtypes ``allocate`` gives them)
Int32s: TypeAlias = npt.NDArray[np.int32]
Int64s: TypeAlias = npt.NDArray[np.int64]
UInt8s: TypeAlias = npt.NDArray[np.uint8]
UInt32s: TypeAlias = npt.NDArray[np.uint32]
Float32s: TypeAlias = npt.NDArray[np.float32]
# scalar arguments of the kernels: Python or numpy integers (indices, counts) and flags (the
# kernels are called with the numpy constants above, numba specializes on the types passed)
Int: TypeAlias = int | np.integer[Any]
Flag: TypeAlias = bool | np.bool_
Real: TypeAlias = float | np.floating[Any]


class TMArrays(NamedTuple):
    """The TM's working arrays.  The kernels and ``_tm_ref.TMRef`` (field offsets in numba's
    layout of this tuple) depend on the field order: append, never reorder.  The segment-pool
    fields (``seg_src`` .. ``seg_seq``) are ``SEG_FIELDS`` in the same order."""

    ip: Int64s  # integer parameters (IP_*)
    fp: Float32s  # float32 parameters (FP_*)
    sc: Int64s  # integer scalars (SC_*)
    fs: Float32s  # float32 scalars (FS_*)
    rng_state: UInt32s
    rng_ptrs: Int64s
    # segment pool (SEG_FIELDS), one row per segment
    seg_src: Int32s
    seg_perm: Float32s
    seg_n: Int32s
    seg_nconn: Int32s
    seg_cell: Int32s
    seg_slot: Int32s
    seg_total: Int64s
    seg_pos: Int64s
    seg_last_active: Int64s
    seg_dc: Float32s
    seg_dc_iter: Int64s
    seg_seq: UInt8s
    seg_free: Int32s
    # segment / cell activities per bank
    act: UInt8s
    act_conn: UInt8s
    cell_act: UInt8s
    touched_segs: Int32s
    touched_cells: Int32s
    # per-cell segment slot lists
    slot_off: Int64s
    slot_cap: Int32s
    nslots: Int32s
    slots: Int64s
    # out-synapse block chains
    out_head: Int32s
    out_tail: Int32s
    out_cnt: Int32s
    blk: Int32s
    blk_next: Int32s
    blk_prev: Int32s
    blk_free: Int32s
    # cell states and column confidences
    st_flags: UInt8s
    st_list: Int32s
    st_cnt: Int64s
    colconf: Float32s
    # queue of pending segment updates
    q_cell: Int32s
    q_seg: Int32s
    q_seq: UInt8s
    q_time: Int64s
    q_n: Int32s
    q_syn: Int32s
    # input histories for backtracking
    inf_hist: Int32s
    inf_len: Int32s
    lrn_hist: Int32s
    lrn_len: Int32s
    col_flags: UInt8s
    scratch_cells: Int32s


def _seg_arrays(capacity: int, width: int) -> dict[str, npt.NDArray[Any]]:
    """Empty segment-pool arrays for ``capacity`` segments of ``width`` synapses."""
    return {
        "seg_src": np.zeros((capacity, width), dtype=np.int32),
        "seg_perm": np.zeros((capacity, width), dtype=np.float32),
        "seg_n": np.zeros(capacity, dtype=np.int32),
        "seg_nconn": np.zeros(capacity, dtype=np.int32),
        "seg_cell": np.full(capacity, -1, dtype=np.int32),
        "seg_slot": np.full(capacity, -1, dtype=np.int32),
        "seg_total": np.zeros(capacity, dtype=np.int64),
        "seg_pos": np.zeros(capacity, dtype=np.int64),
        "seg_last_active": np.zeros(capacity, dtype=np.int64),
        "seg_dc": np.zeros(capacity, dtype=np.float32),
        "seg_dc_iter": np.zeros(capacity, dtype=np.int64),
        "seg_seq": np.zeros(capacity, dtype=np.uint8),
        "seg_free": np.zeros(capacity, dtype=np.int32),
    }


def allocate(ip: Int64s, fp: Float32s, rng_state: UInt32s, rng_ptrs: Int64s,
             seg_cap: int = SEG_CAP, blk_cap: int = BLK_CAP,
             slot_cap: int = SLOT_ROOM) -> TMArrays:
    """Fresh arrays for a TM with parameters ``ip``/``fp`` and the given RNG state, with room
    for ``seg_cap`` segments, ``blk_cap`` out-synapse blocks and ``slot_cap`` segment slots."""
    n_cols = int(ip[IP_NCOLS])
    n_cells = n_cols * int(ip[IP_CPC])
    width = int(ip[IP_W])
    q_cap = (int(ip[IP_MAX_LRN_BT]) + 3 + int(ip[IP_SEG_UPD_VALID]) * int(ip[IP_DO_POOLING])) \
        * n_cols + 64
    sc = np.zeros(N_SC, dtype=np.int64)
    sc[SC_PAM] = ip[IP_PAM_LEN]
    fields: dict[str, npt.NDArray[Any]] = dict(
        ip=ip, fp=fp, sc=sc, fs=np.zeros(N_FS, dtype=np.float32),
        rng_state=rng_state, rng_ptrs=rng_ptrs,
        **_seg_arrays(seg_cap, width),
        act=np.zeros((2, seg_cap), dtype=np.uint8),
        act_conn=np.zeros((2, seg_cap), dtype=np.uint8),
        cell_act=np.zeros((2, n_cells), dtype=np.uint8),
        touched_segs=np.zeros((2, seg_cap), dtype=np.int32),
        touched_cells=np.zeros((2, n_cells), dtype=np.int32),
        slot_off=np.full(n_cells, -1, dtype=np.int64),
        slot_cap=np.zeros(n_cells, dtype=np.int32),
        nslots=np.zeros(n_cells, dtype=np.int32),
        slots=np.zeros(slot_cap, dtype=np.int64),
        out_head=np.full(n_cells, -1, dtype=np.int32),
        out_tail=np.full(n_cells, -1, dtype=np.int32),
        out_cnt=np.zeros(n_cells, dtype=np.int32),
        blk=np.zeros((blk_cap, BLOCK), dtype=np.int32),
        blk_next=np.full(blk_cap, -1, dtype=np.int32),
        blk_prev=np.full(blk_cap, -1, dtype=np.int32),
        blk_free=np.zeros(blk_cap, dtype=np.int32),
        st_flags=np.zeros((N_STATES, n_cells), dtype=np.uint8),
        st_list=np.zeros((N_STATES, n_cells), dtype=np.int32),
        st_cnt=np.zeros(N_STATES, dtype=np.int64),
        colconf=np.zeros((2, n_cols), dtype=np.float32),
        q_cell=np.zeros(q_cap, dtype=np.int32),
        q_seg=np.zeros(q_cap, dtype=np.int32),
        q_seq=np.zeros(q_cap, dtype=np.uint8),
        q_time=np.zeros(q_cap, dtype=np.int64),
        q_n=np.zeros(q_cap, dtype=np.int32),
        q_syn=np.zeros((q_cap, width), dtype=np.int32),
        inf_hist=np.zeros((int(ip[IP_MAX_INF_BT]) + 1, n_cols), dtype=np.int32),
        inf_len=np.zeros(int(ip[IP_MAX_INF_BT]) + 1, dtype=np.int32),
        lrn_hist=np.zeros((int(ip[IP_MAX_LRN_BT]) + 1, n_cols), dtype=np.int32),
        lrn_len=np.zeros(int(ip[IP_MAX_LRN_BT]) + 1, dtype=np.int32),
        col_flags=np.zeros(n_cols, dtype=np.uint8),
        scratch_cells=np.zeros(n_cells, dtype=np.int32),
    )
    return TMArrays(**fields)


def _grow_rows(arr: npt.NDArray[Any], new_len: int, fill: int | float = 0) -> npt.NDArray[Any]:
    """Copy of ``arr`` with its first axis extended to ``new_len`` (new rows = ``fill``)."""
    shape = (new_len,) + arr.shape[1:]
    out = np.full(shape, fill, dtype=arr.dtype)
    out[:arr.shape[0]] = arr
    return out


def reserve(a: TMArrays, n_active_max: int) -> TMArrays:
    """Grow the pools so that one compute step with at most ``n_active_max`` active columns
    (in the input and in the learning history) cannot run out of room."""
    ip, sc = a.ip, a.sc
    rounds = int(ip[IP_MAX_LRN_BT]) + 2
    new_segs = rounds * n_active_max + 1
    adapt_calls = 2 * rounds * n_active_max + 1
    new_blocks = adapt_calls * int(ip[IP_W])
    new_slots = new_segs * 2 * max(4, int(ip[IP_MAX_SEGS]))
    updates: dict[str, npt.NDArray[Any]] = {}

    seg_cap = a.seg_n.shape[0]
    seg_room = seg_cap - int(sc[SC_SEG_HIGH]) + int(sc[SC_SEG_NFREE])
    if seg_room < new_segs:
        new_cap = seg_cap
        while new_cap - int(sc[SC_SEG_HIGH]) + int(sc[SC_SEG_NFREE]) < new_segs:
            new_cap *= 2
        for name in SEG_FIELDS + ("seg_free",):
            arr = getattr(a, name)
            fill = -1 if name in ("seg_cell", "seg_slot") else 0
            updates[name] = _grow_rows(arr, new_cap, fill)
        updates["act"] = np.zeros((2, new_cap), dtype=np.uint8)  # all zero between steps
        updates["act_conn"] = np.zeros((2, new_cap), dtype=np.uint8)
        updates["touched_segs"] = np.zeros((2, new_cap), dtype=np.int32)

    blk_cap = a.blk.shape[0]
    if blk_cap - int(sc[SC_BLK_HIGH]) + int(sc[SC_BLK_NFREE]) < new_blocks:
        new_cap = blk_cap
        while new_cap - int(sc[SC_BLK_HIGH]) + int(sc[SC_BLK_NFREE]) < new_blocks:
            new_cap *= 2
        updates["blk"] = _grow_rows(a.blk, new_cap)
        updates["blk_next"] = _grow_rows(a.blk_next, new_cap, -1)
        updates["blk_prev"] = _grow_rows(a.blk_prev, new_cap, -1)
        updates["blk_free"] = _grow_rows(a.blk_free, new_cap)

    slot_cap = a.slots.shape[0]
    if slot_cap - int(sc[SC_SLOT_TOP]) < new_slots:
        new_cap = slot_cap
        while new_cap - int(sc[SC_SLOT_TOP]) < new_slots:
            new_cap *= 2
        updates["slots"] = _grow_rows(a.slots, new_cap)
    # every non-read-only learnPhase2 queues at most one update per column
    q_need = int(sc[SC_QLEN]) + rounds * int(ip[IP_NCOLS]) + 1
    if a.q_cell.shape[0] < q_need:
        for name in ("q_cell", "q_seg", "q_seq", "q_time", "q_n", "q_syn"):
            updates[name] = _grow_rows(getattr(a, name), max(q_need, 2 * a.q_cell.shape[0]))
    return a._replace(**updates) if updates else a
