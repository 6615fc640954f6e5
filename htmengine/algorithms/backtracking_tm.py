"""Backtracking temporal memory: a re-implementation of NuPIC's ``BacktrackingTMCPP``
(nupic.core ``Cells4``), the TM of NuPIC's scalar anomaly model (``temporalImp: "cpp"``).

The algorithm follows Cells4 step for step:

* **inference** (before learning): phase 1 activates the predicted cells of each active
  column and bursts the others (start cells only right after a reset); phase 2 computes the
  predicted cells and the column confidences.  When fewer than half the columns were
  predicted, or too few columns are predicted next, ``inferBacktrack`` replays up to
  ``maxInfBacktrack`` past inputs from start cells to lock on to the sequence;
* **learning**: one learning cell per active column - the predicted one, else the cell with
  the best matching sequence segment (>= ``minThreshold`` active synapses), else a random
  non-start cell below ``maxSegmentsPerCell`` (or the cell of the column's segment with the
  lowest duty cycle, which is freed).  Segment updates are queued in phase 2 and applied when
  the column gets bottom-up input within ``segUpdateValidDuration`` steps; after ``pamLength``
  steps out of sequence, a reset or ``maxSeqLength`` steps, ``learnBacktrack`` re-learns
  from up to ``maxLrnBacktrack`` steps back, or learning starts over on start cells;
* ``adaptSegment`` decrements inactive synapses, increments active ones, frees the weakest
  synapses beyond ``maxSynapsesPerSegment`` and grows up to ``newSynapseCount`` new ones;
  segment duty cycles use Cells4's tiers; random choices use NuPIC's ``Random(seed)``.

Version: nupic.core **0.4.10** (NuPIC 0.5.6, the run behind NAB's published score), not later
releases.  In 0.4.10 ``adaptSegment`` hands ``Segment::freeNSynapses`` the synapse indices taken
*before* the decrement pass pruned synapses with permanence <= 0 (fixed by NUP-2324, Feb 2017).
The stale indices pick shifted synapses, may read past the end of the compacted segment (the
segment then keeps more than ``maxSynapsesPerSegment`` synapses) and may erase the
forward-propagation entry of a synapse that stays ("orphan": not counted in segment
activities, still counted by ``isActive`` and ``getBestMatchingCellT1``).  This is reproduced
(``_tm_kernels._free_n_synapses``, ``out_mark_orphan``); with it the raw anomaly scores equal
NuPIC's published ones on every row of NAB.

Predicted columns for the anomaly score
---------------------------------------
NuPIC's ``TMRegion`` in ``anomalyMode`` (set by ``HTMPredictionModel`` for
``TemporalAnomaly``) takes, *before* computing the current record,
``prevPredictedColumns = self._tfdr.topDownCompute().nonzero()[0]`` and ``topDownCompute()``
of the backtracking TM returns ``colConfidence['t']`` - the column confidences left by the
previous compute.  So a column counts as predicted when any of its cells has a segment with at
least ``activationThreshold`` active synapses, connected or not (not the bottomUpOut /
predicted-cells output).  ``predicted_columns()`` returns exactly the non-zero columns of
``getColConfidence()`` after a compute, for the model to use at the next record.

Implementation: plain numpy arrays (see ``_tm_state``) and numba kernels (``_tm_kernels``,
``_tm_learn``, ``_tm_infer``, ``_tm_store``; state packing in ``_tm_persist``).  Segment
activities come from forward propagation over per-source-cell lists of fed segments, each entry
also flagging whether its synapse is connected, so Cells4's ``isActive`` test is a counter
comparison.  Float arithmetic is float32 as in Cells4 and follows its summation order.

Differences from Cells4 (none affects the outputs): the cell confidences (never read by the
algorithm) and the average learned sequence length (a diagnostic) are not kept;
``maxSegmentsPerCell``/``maxSynapsesPerSegment`` must be positive, which in Cells4 already
forces ``globalDecay`` 0 and ``maxAge`` 0 (so there is no global decay to apply).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from htmengine.algorithms import _resident
from htmengine.algorithms import _tm_state as S
from htmengine.algorithms._tm_infer import tm_compute, tm_reset
from htmengine.algorithms._tm_persist import (
    TM_STATE_VERSION,
    arrays_from_state,
    check_state,
    pack_params,
    pack_state,
    params_from_state,
    saved_state,
    state_nbytes,
)
from htmengine.algorithms._tm_store import (
    compact_slots,
    count_synapses,
    room_check,
)
from htmengine.algorithms._types import StateDict
from htmengine.algorithms.nupic_random import STATE_SIZE, rng_seed_state

_INT_PARAMS = ("numberOfCols", "cellsPerColumn", "minThreshold", "newSynapseCount",
               "activationThreshold", "segUpdateValidDuration", "burnIn", "seed", "pamLength",
               "maxInfBacktrack", "maxLrnBacktrack", "maxAge", "maxSeqLength",
               "maxSegmentsPerCell", "maxSynapsesPerSegment")
_FLOAT_PARAMS = ("initialPerm", "connectedPerm", "permanenceInc", "permanenceDec",
                 "permanenceMax", "globalDecay")


_Params: TypeAlias = dict[str, Any]  # the constructor arguments by name, once validated
_Int32s: TypeAlias = npt.NDArray[np.int32]
_Int64s: TypeAlias = npt.NDArray[np.int64]
_UInt8s: TypeAlias = npt.NDArray[np.uint8]
_Float32s: TypeAlias = npt.NDArray[np.float32]
# getSegmentsOnCell: one segment's slot, sources, permanences, flags and counters
_SegmentInfo: TypeAlias = dict[str, int | bool | _Int32s | _Float32s]


_OUTPUTS: dict[int, _Float32s] = {}
# The working arrays the last TM to dehydrate dropped, per parameter vector: the next TM of
# the same parameters to hydrate reuses their segment pool (see arrays_from_state).
_SPARE: dict[bytes, S.TMArrays] = {}


def _output_buffer(n_cells: int) -> _Float32s:
    """This process's cell-output scratch buffer for TMs of ``n_cells`` cells."""
    buffer = _OUTPUTS.get(n_cells)
    if buffer is None:
        buffer = _OUTPUTS[n_cells] = np.zeros(n_cells, dtype=np.float32)
    return buffer


class BacktrackingTM:
    """NuPIC ``BacktrackingTMCPP`` (Cells4) with NuPIC's constructor keywords."""

    def __init__(self, numberOfCols: int = 2048, cellsPerColumn: int = 32,
                 initialPerm: float = 0.21, connectedPerm: float = 0.5,
                 minThreshold: int = 10, newSynapseCount: int = 20,
                 permanenceInc: float = 0.1, permanenceDec: float = 0.1,
                 permanenceMax: float = 1.0, globalDecay: float = 0.0,
                 activationThreshold: int = 13, doPooling: bool = False,
                 segUpdateValidDuration: int = 5, burnIn: int = 2, seed: int = 1960,
                 pamLength: int = 3, maxInfBacktrack: int = 10, maxLrnBacktrack: int = 5,
                 maxAge: int = 0, maxSeqLength: int = 32, maxSegmentsPerCell: int = 128,
                 maxSynapsesPerSegment: int = 32, outputType: str = "normal") -> None:
        params = dict(numberOfCols=numberOfCols, cellsPerColumn=cellsPerColumn,
                      initialPerm=initialPerm, connectedPerm=connectedPerm,
                      minThreshold=minThreshold, newSynapseCount=newSynapseCount,
                      permanenceInc=permanenceInc, permanenceDec=permanenceDec,
                      permanenceMax=permanenceMax, globalDecay=globalDecay,
                      activationThreshold=activationThreshold, doPooling=bool(doPooling),
                      segUpdateValidDuration=segUpdateValidDuration, burnIn=burnIn, seed=seed,
                      pamLength=pamLength, maxInfBacktrack=maxInfBacktrack,
                      maxLrnBacktrack=maxLrnBacktrack, maxAge=maxAge,
                      maxSeqLength=maxSeqLength, maxSegmentsPerCell=maxSegmentsPerCell,
                      maxSynapsesPerSegment=maxSynapsesPerSegment, outputType=outputType)
        self._params = self._validate(params)
        self._arrays: S.TMArrays | None = None
        self._rest: StateDict | None = None
        rng_state = np.zeros(STATE_SIZE, dtype=np.uint32)
        rng_ptrs = np.zeros(2, dtype=np.int64)
        rng_seed_state(int(self._params["seed"]), rng_state, rng_ptrs)
        ip = self._int_params()
        self._a = S.allocate(ip, self._float_params(), rng_state, rng_ptrs)
        _SPARE.pop(ip.tobytes(), None)  # a fresh TM has its own arrays: drop the previous ones

    # ------------------------------------------------------------------ state vs working set
    @property
    def _a(self) -> S.TMArrays:
        """The working arrays (built from the state at rest if another TM held them)."""
        if self._arrays is None or not _resident.holds("tm", self):
            _resident.claim("tm", self)
            if self._arrays is None:
                assert self._rest is not None
                ip = self._int_params()
                self._arrays = arrays_from_state(ip, self._float_params(), self._rest,
                                                 _SPARE.pop(ip.tobytes(), None))
                self._rest = None
        return self._arrays

    @_a.setter
    def _a(self, arrays: S.TMArrays) -> None:
        _resident.claim("tm", self)
        self._arrays = arrays
        self._rest = None

    def dehydrate(self) -> None:
        """Pack the state into its compact form at rest and leave the working arrays to the
        next TM of this process to hydrate."""
        if self._arrays is not None:
            self._rest = pack_state(self._params, self._arrays)
            _SPARE[self._arrays.ip.tobytes()] = self._arrays
            self._arrays = None

    def __del__(self) -> None:
        """A TM dropped while it holds the working arrays leaves them to the next TM (a
        model evicted after it ran, the usual case in a busy process)."""
        arrays = self.__dict__.get("_arrays")
        if arrays is not None:
            _SPARE[arrays.ip.tobytes()] = arrays

    def state_nbytes(self) -> int:
        """Bytes of the state this TM holds at rest (its packed arrays)."""
        if self._rest is None:
            return state_nbytes(pack_state(self._params, self._a))
        return state_nbytes(self._rest)

    # ------------------------------------------------------------------ parameters
    @staticmethod
    def _validate(p: _Params) -> _Params:
        """Check the constructor arguments; returns them normalised."""
        for name in _INT_PARAMS:
            value = p[name]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            p[name] = int(value)
        for name in _FLOAT_PARAMS:
            value = p[name]
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            p[name] = float(value)
        positive = ("numberOfCols", "activationThreshold", "minThreshold", "newSynapseCount",
                    "pamLength", "maxSegmentsPerCell", "maxSynapsesPerSegment")
        for name in positive:
            if p[name] <= 0:
                raise ValueError(f"{name} must be positive, got {p[name]!r}")
        if p["cellsPerColumn"] < 2:
            raise ValueError(f"cellsPerColumn must be at least 2, got {p['cellsPerColumn']!r}")
        for name in ("segUpdateValidDuration", "maxInfBacktrack", "maxLrnBacktrack",
                     "maxSeqLength", "seed", "maxAge", "burnIn"):
            if p[name] < 0:
                raise ValueError(f"{name} must not be negative, got {p[name]!r}")
        if p["globalDecay"] != 0.0 or p["maxAge"] != 0:
            raise ValueError("globalDecay and maxAge must be 0 with fixed-size segments "
                             f"(got globalDecay={p['globalDecay']!r}, maxAge={p['maxAge']!r})")
        if p["newSynapseCount"] > p["maxSynapsesPerSegment"]:
            raise ValueError("maxSynapsesPerSegment must be >= newSynapseCount, got "
                             f"{p['maxSynapsesPerSegment']} < {p['newSynapseCount']}")
        if p["maxSynapsesPerSegment"] > 255:
            raise ValueError("maxSynapsesPerSegment must be at most 255 (Cells4 counts activity "
                             f"in bytes), got {p['maxSynapsesPerSegment']}")
        if p["maxSegmentsPerCell"] > 128:
            raise ValueError("maxSegmentsPerCell must be at most 128 (Cells4 limit), got "
                             f"{p['maxSegmentsPerCell']}")
        if p["outputType"] != "normal":
            raise ValueError(f"outputType must be 'normal', got {p['outputType']!r}")
        if p["numberOfCols"] * p["cellsPerColumn"] >= 2 ** 31:
            raise ValueError("numberOfCols * cellsPerColumn is too large")
        return p

    def _int_params(self) -> _Int64s:
        """Integer parameter vector for the kernels."""
        p = self._params
        ip = np.zeros(S.N_IP, dtype=np.int64)
        ip[S.IP_NCOLS] = p["numberOfCols"]
        ip[S.IP_CPC] = p["cellsPerColumn"]
        ip[S.IP_ACT_THR] = p["activationThreshold"]
        ip[S.IP_MIN_THR] = p["minThreshold"]
        ip[S.IP_NEW_SYN] = p["newSynapseCount"]
        ip[S.IP_SEG_UPD_VALID] = p["segUpdateValidDuration"]
        ip[S.IP_PAM_LEN] = p["pamLength"]
        ip[S.IP_MAX_INF_BT] = p["maxInfBacktrack"]
        ip[S.IP_MAX_LRN_BT] = p["maxLrnBacktrack"]
        ip[S.IP_MAX_SEQ_LEN] = p["maxSeqLength"]
        ip[S.IP_MAX_SEGS] = p["maxSegmentsPerCell"]
        ip[S.IP_MAX_SYNS] = p["maxSynapsesPerSegment"]
        ip[S.IP_DO_POOLING] = 1 if p["doPooling"] else 0
        # nupic.core 0.4.10 can leave up to newSynapseCount synapses more than
        # maxSynapsesPerSegment on a segment (see _tm_kernels._free_n_synapses)
        ip[S.IP_W] = max(p["maxSynapsesPerSegment"], p["newSynapseCount"]) \
            + p["newSynapseCount"]
        return ip

    def _float_params(self) -> _Float32s:
        """float32 parameter vector for the kernels (Cells4 uses 32-bit floats)."""
        p = self._params
        fp = np.zeros(S.N_FP, dtype=np.float32)
        fp[S.FP_INIT] = p["initialPerm"]
        fp[S.FP_CONN] = p["connectedPerm"]
        fp[S.FP_MAX] = p["permanenceMax"]
        fp[S.FP_DEC] = p["permanenceDec"]
        fp[S.FP_INC] = p["permanenceInc"]
        return fp

    def __getattr__(self, name: str) -> Any:
        """The constructor arguments as attributes (``tm.numberOfCols``, ...), as NuPIC's."""
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    # ------------------------------------------------------------------ compute
    def compute(self, bottomUpInput: npt.ArrayLike, enableLearn: bool,
                enableInference: bool = True) -> _Float32s:
        """One time step on the dense 0/1 column input; returns the cell output (1 for cells
        active or predicted in the inference state), float32 of numberOfCols*cellsPerColumn."""
        if not (enableLearn or enableInference):
            raise ValueError("compute needs enableLearn or enableInference")
        x = np.asarray(bottomUpInput)
        if x.ndim != 1 or x.shape[0] != self.numberOfCols:
            raise ValueError(f"bottomUpInput must be a 1-D array of length "
                             f"{self.numberOfCols}, got shape {x.shape}")
        output = _output_buffer(self.numberOfCols * self.cellsPerColumn)
        self.compute_columns(np.flatnonzero(x).astype(np.int32), bool(enableLearn),
                             bool(enableInference), output)
        return output.copy()

    def compute_columns(self, cols: _Int32s, enableLearn: bool, enableInference: bool,
                        output: _Float32s | None = None) -> None:
        """``compute`` on the sorted int32 indices of the active columns; the cell output is
        written to ``output`` when given."""
        a = self._a
        flags, n_max = room_check(a, cols.shape[0])
        if flags & 2:
            self._compact_slots()
        if flags:
            self._a = S.reserve(self._a, int(n_max))
        if output is None:
            output = _output_buffer(self.numberOfCols * self.cellsPerColumn)
        arrays = self._arrays
        assert arrays is not None  # held since self._a above
        tm_compute(arrays, cols, enableLearn, enableInference, output)

    def _compact_slots(self) -> None:
        """Repack the slot pool (cells move their slot lists when these grow)."""
        a = self._a
        slots, top = compact_slots(a.slot_off, a.slot_cap, a.nslots, a.slots, 8192)
        a.sc[S.SC_SLOT_TOP] = top
        self._a = a._replace(slots=slots)

    def reset(self) -> None:
        """Start a new sequence: clear states, queued updates and input histories."""
        tm_reset(self._a)

    # ------------------------------------------------------------------ inspection
    def getColConfidence(self) -> _Float32s:
        """Column confidences from the last compute (float32, numberOfCols)."""
        confidences: _Float32s = self._a.colconf[S.CONF_T].copy()
        return confidences

    def predicted_columns(self) -> _Int64s:
        """Sorted indices of the columns with non-zero confidence after the last compute:
        the columns NuPIC's TMRegion treats as predicted when scoring the NEXT input."""
        return np.flatnonzero(self._a.colconf[S.CONF_T]).astype(np.int64)

    def getPredictedState(self) -> _UInt8s:
        """Cells predicted (inference state) for the next step, as 0/1 uint8."""
        return self._cell_states(S.INF_PRED_T)

    def getActiveState(self) -> _UInt8s:
        """Cells active in the inference state at this step, as 0/1 uint8."""
        return self._cell_states(S.INF_ACT_T)

    def getLearnActiveStateT(self) -> _UInt8s:
        """Learning cells at this step, as 0/1 uint8."""
        return self._cell_states(S.LRN_ACT_T)

    def _cell_states(self, state: int | np.int64) -> _UInt8s:
        """A copy of one row of the cell state flags (``_tm_state`` INF_*/LRN_* indices)."""
        flags: _UInt8s = self._a.st_flags[state].copy()
        return flags

    def numSegments(self) -> int:
        """Number of live segments."""
        a = self._a
        return int(a.sc[S.SC_SEG_HIGH] - a.sc[S.SC_SEG_NFREE])

    def numSynapses(self) -> int:
        """Number of synapses on live segments."""
        return int(count_synapses(self._a))

    def getSegmentsOnCell(self, column: int, cellInColumn: int) -> list[_SegmentInfo]:
        """The cell's segments in slot order: dicts with ``slot``, ``sources`` (cell
        indices), ``permanences``, ``sequence``, ``positiveActivations``,
        ``totalActivations``, ``lastActiveIteration``."""
        a = self._a
        if not 0 <= column < self.numberOfCols or not 0 <= cellInColumn < self.cellsPerColumn:
            raise ValueError(f"no cell ({column}, {cellInColumn})")
        cell = column * self.cellsPerColumn + cellInColumn
        result: list[_SegmentInfo] = []
        for slot in range(int(a.nslots[cell])):
            p = int(a.slots[a.slot_off[cell] + slot])
            if p < 0:
                continue
            n = int(a.seg_n[p])
            result.append({"slot": slot, "sources": a.seg_src[p, :n].copy(),
                           "permanences": a.seg_perm[p, :n].copy(),
                           "sequence": bool(a.seg_seq[p]),
                           "positiveActivations": int(a.seg_pos[p]),
                           "totalActivations": int(a.seg_total[p]),
                           "lastActiveIteration": int(a.seg_last_active[p])})
        return result

    def numSegmentsOnCell(self, column: int, cellInColumn: int) -> int:
        """Number of live segments on one cell."""
        return len(self.getSegmentsOnCell(column, cellInColumn))

    @property
    def learnIterations(self) -> int:
        """Number of learning steps so far."""
        return int(self._a.sc[S.SC_NLRN])

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> StateDict:
        """Complete state (parameters, segments, cell states, queued updates, histories, RNG)
        as plain arrays and scalars."""
        return saved_state(self._rest if self._rest is not None
                           else pack_state(self._params, self._a))

    @classmethod
    def from_state_dict(cls, d: StateDict) -> BacktrackingTM:
        """Rebuild a TM that continues exactly where the saved one stopped; the state is
        checked completely (ValueError) and kept at rest until the TM computes."""
        params = params_from_state(d)
        tm = cls.__new__(cls)
        tm._params = cls._validate(dict(params))
        rest = check_state(tm._int_params(), d)
        rest.update(tm_version=TM_STATE_VERSION, **pack_params(tm._params))
        tm._arrays = None
        tm._rest = rest
        return tm
