"""Spatial pooler with global inhibition, following nupic.core's C++ ``SpatialPooler``.

Semantics kept from nupic.core: NuPIC's RNG and draw order at initialisation (tie-breaker
draws, wrapping potential pool by selection sampling, permanences rounded to 5 decimals,
trimmed below ``synPermActiveInc / 2``), float32 arithmetic for permanences and duty cycles,
winners = top ``numActiveColumnsPerInhArea`` boosted overlaps with ties going to the higher
column index, learning on the active columns only, duty cycles over
``min(dutyCyclePeriod, iteration)``, weak-column bump by ``synPermConnected / 10`` (runs even
with ``boostStrength`` 0) and min duty cycles refreshed every 50 iterations.

Only one-dimensional input and column topologies with global inhibition are supported
(that is what the anomaly model uses).

Data layout: a dense float32 permanence matrix (columns x inputs), a boolean potential mask,
and a transposed uint8 "connected" matrix (inputs x columns) so that the overlap of a sparse
input is a sum of a few contiguous rows. The numba kernels working on these arrays are in
``_sp_kernels``; this module holds the state, the working set, compute and persistence.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from htmengine.algorithms import _codec, _resident
from htmengine.algorithms._sp_kernels import INIT_CONNECTED_PCT as INIT_CONNECTED_PCT
from htmengine.algorithms._sp_kernels import (
    Bools,
    Float32s,
    Int32s,
    Int64s,
    UInt8s,
    adapt_synapses,
    bump_up_weak_columns,
    compute_overlaps,
    initialize_columns,
    update_column,
    update_duty_cycles,
    winners_integer,
)
from htmengine.algorithms._sp_restore import restore_columns
from htmengine.algorithms._types import StateDict, StateValue
from htmengine.algorithms.nupic_random import NupicRandom
from htmengine.exceptions import InvalidInputError

UPDATE_PERIOD = 50
STATE_FORMAT = 2  # 1: touched rows as float32; 2: coded against the initial rows (_codec)


# What the initial state depends on: inputs, columns, potential radius, potential pct,
# synPermConnected, trim threshold, seed (see SpatialPooler._init_key).
_InitKey: TypeAlias = tuple[int, int, int, float, float, float, int]


class _Dense(NamedTuple):
    """A pooler's dense working arrays."""

    potential: Bools
    permanences: Float32s
    connected_t: UInt8s
    connected_counts: Int32s


class _Initial(NamedTuple):
    """The initial state drawn from the seed (shared, read-only)."""

    potential: Bools
    permanences: Float32s
    connected_t: UInt8s
    connected_counts: Int32s
    rng: StateDict
    checksum: int


_INITIAL: dict[_InitKey, _Initial] = {}
# The dense arrays the last pooler to dehydrate left (per parameter set) and the columns in
# which they differ from the initial state: the next pooler to hydrate resets those columns
# instead of copying the whole initial matrices (one working set per process).
_SPARE: dict[_InitKey, tuple[Float32s, UInt8s, Int32s, Int64s]] = {}


def _initial_state(key: _InitKey) -> _Initial:
    """The initial potential pools, permanences and RNG state of the poolers with ``key``
    (see ``SpatialPooler._init_key``), drawn once per process."""
    initial = _INITIAL.get(key)
    if initial is not None:
        return initial
    n_i, n_c, radius, pct, connected, trim, seed = key
    random = NupicRandom(seed if seed > 0 else 1)
    potential = np.zeros((n_c, n_i), dtype=np.bool_)
    permanences = np.zeros((n_c, n_i), dtype=np.float32)
    connected_t = np.zeros((n_i, n_c), dtype=np.uint8)
    counts = np.zeros(n_c, dtype=np.int32)
    initialize_columns(random.state, random.ptrs, n_c, n_i, radius, np.float32(pct),
                       np.float32(connected), np.float32(trim), potential, permanences,
                       connected_t, counts)
    crc = zlib.crc32(np.packbits(potential, axis=1).tobytes())
    checksum = zlib.crc32(permanences.tobytes(), crc)
    for arr in (potential, permanences, connected_t, counts):
        arr.flags.writeable = False
    initial = _INITIAL[key] = _Initial(potential, permanences, connected_t, counts,
                                       random.state_dict(), checksum)
    return initial


class SpatialPooler:
    """Global-inhibition spatial pooler with nupic.core semantics (NuPIC keyword names)."""

    def __init__(self, inputDimensions: int | Sequence[int] = (454,),
                 columnDimensions: int | Sequence[int] = (2048,), potentialRadius: int = 16,
                 potentialPct: float = 0.5, globalInhibition: bool = True,
                 localAreaDensity: float | None = -1.0,
                 numActiveColumnsPerInhArea: int | None = 10, stimulusThreshold: int = 0,
                 synPermInactiveDec: float = 0.008, synPermActiveInc: float = 0.05,
                 synPermConnected: float = 0.1, minPctOverlapDutyCycle: float = 0.001,
                 dutyCyclePeriod: int = 1000, boostStrength: float = 0.0, seed: int = 1,
                 spVerbosity: int = 0, wrapAround: bool = True) -> None:
        input_dims = _as_dims(inputDimensions, "inputDimensions")
        column_dims = _as_dims(columnDimensions, "columnDimensions")
        if not globalInhibition:
            raise InvalidInputError("SpatialPooler: only globalInhibition=True is supported")
        if not wrapAround:
            raise InvalidInputError("SpatialPooler: only wrapAround=True is supported")
        if not 0 < potentialPct <= 1:
            raise InvalidInputError(f"potentialPct must be in (0, 1], got {potentialPct!r}")
        if localAreaDensity is not None and localAreaDensity > 0:
            raise InvalidInputError(f"SpatialPooler: localAreaDensity={localAreaDensity!r} is "
                                    f"not supported; leave it at -1 and set "
                                    f"numActiveColumnsPerInhArea")
        if numActiveColumnsPerInhArea is None or numActiveColumnsPerInhArea <= 0:
            raise InvalidInputError("numActiveColumnsPerInhArea must be positive "
                                    f"(localAreaDensity is not supported), got "
                                    f"{numActiveColumnsPerInhArea!r}")
        self.numInputs = int(np.prod(input_dims))
        self.numColumns = int(np.prod(column_dims))
        self.inputDimensions = input_dims
        self.columnDimensions = column_dims
        self.potentialRadius = min(int(potentialRadius), self.numInputs)
        self.potentialPct = np.float32(potentialPct)
        self.numActiveColumnsPerInhArea = int(numActiveColumnsPerInhArea)
        self.stimulusThreshold = int(stimulusThreshold)
        self.synPermInactiveDec = np.float32(synPermInactiveDec)
        self.synPermActiveInc = np.float32(synPermActiveInc)
        self.synPermConnected = np.float32(synPermConnected)
        self.synPermBelowStimulusInc = np.float32(float(self.synPermConnected) / 10.0)
        self.synPermTrimThreshold = np.float32(float(self.synPermActiveInc) / 2.0)
        if not self.synPermTrimThreshold < self.synPermConnected:
            raise InvalidInputError("synPermActiveInc / 2 must be below synPermConnected")
        self.minPctOverlapDutyCycle = np.float32(minPctOverlapDutyCycle)
        self.dutyCyclePeriod = int(dutyCyclePeriod)
        self.boostStrength = np.float32(boostStrength)
        self.seed = int(seed)
        self.spVerbosity = spVerbosity
        # Global inhibition: the inhibition area is every column.
        density = min(np.float32(self.numActiveColumnsPerInhArea) / np.float32(self.numColumns),
                      np.float32(0.5))
        self.numDesired = int(np.float32(density) * np.float32(self.numColumns))
        if self.numDesired <= 0:
            raise InvalidInputError("not enough columns for the desired density")
        self.iterationNum = 0
        self.iterationLearnNum = 0
        n_c, n_i = self.numColumns, self.numInputs
        self.overlapDutyCycles = np.zeros(n_c, dtype=np.float32)
        self.activeDutyCycles = np.zeros(n_c, dtype=np.float32)
        self.minOverlapDutyCycles = np.zeros(n_c, dtype=np.float32)
        self.boostFactors = np.ones(n_c, dtype=np.float32)
        self.overlaps = np.zeros(n_c, dtype=np.int32)
        # Columns whose permanences may differ from the initial draw (kept at rest and saved);
        # the others are the initial state, shared by every pooler of this process with the
        # same parameters.
        self.touched = np.zeros(n_c, dtype=np.bool_)
        self.potentialModified = False
        initial = _initial_state(self._init_key())
        self.random = NupicRandom.from_state_dict(initial.rng)
        self.initChecksum = initial.checksum
        self._dense: _Dense | None = None
        self._rest_rows = np.zeros((0, n_i), dtype=np.float32)
        self._rest_potential: UInt8s | None = None  # packed bits, when modified

    def _init_key(self) -> _InitKey:
        """Everything the initial potential pools and permanences depend on."""
        return (self.numInputs, self.numColumns, self.potentialRadius, float(self.potentialPct),
                float(self.synPermConnected), float(self.synPermTrimThreshold), self.seed)

    # ----------------------------------------------------------------- state vs working set
    def _working(self) -> _Dense:
        """The dense working arrays, built from the state at rest when needed."""
        if self._dense is None or not _resident.holds("sp", self):
            _resident.claim("sp", self)
            if self._dense is None:
                self._dense = self._hydrate()
        return self._dense

    def _hydrate(self) -> _Dense:
        key = self._init_key()
        initial = _initial_state(key)
        spare = _SPARE.pop(key, None)
        if spare is None:
            permanences = initial.permanences.copy()
            connected_t = initial.connected_t.copy()
            counts = initial.connected_counts.copy()
            dirty = np.zeros(0, dtype=np.int64)
        else:
            permanences, connected_t, counts, dirty = spare
        restore_columns(permanences, connected_t, counts, initial.permanences,
                         initial.connected_t, initial.connected_counts, dirty,
                         np.flatnonzero(self.touched), self._rest_rows, self.synPermConnected)
        if self._rest_potential is not None:
            potential = np.unpackbits(self._rest_potential, axis=1,
                                      count=self.numInputs).astype(np.bool_)
        else:
            potential = initial.potential
        self._rest_rows = np.zeros((0, self.numInputs), dtype=np.float32)
        self._rest_potential = None
        return _Dense(potential, permanences, connected_t, counts)

    def dehydrate(self) -> None:
        """Keep only the changed permanence rows (and a modified potential) at rest; the dense
        arrays are left for the next pooler of this process to reuse."""
        dense = self._dense
        if dense is None:
            return
        touched = np.flatnonzero(self.touched)
        self._rest_rows = dense.permanences[touched]
        if self.potentialModified:
            self._rest_potential = np.packbits(dense.potential, axis=1)
        self._dense = None
        _SPARE[self._init_key()] = (dense.permanences, dense.connected_t,
                                    dense.connected_counts, touched)

    def __del__(self) -> None:
        """A pooler dropped while it holds the dense arrays leaves them to the next pooler
        (a model evicted after it ran, the usual case in a busy process)."""
        dense = self.__dict__.get("_dense")
        if dense is not None:
            _SPARE[self._init_key()] = (dense.permanences, dense.connected_t,
                                        dense.connected_counts, np.flatnonzero(self.touched))

    def state_nbytes(self) -> int:
        """Bytes of the state this pooler holds at rest."""
        rows = int(self.touched.sum()) * self.numInputs * 4
        potential = (self.numColumns * ((self.numInputs + 7) // 8)
                     if self.potentialModified else 0)
        vectors = (self.overlapDutyCycles, self.activeDutyCycles, self.minOverlapDutyCycles,
                   self.boostFactors, self.overlaps, self.touched, self.random.state,
                   self.random.ptrs)
        return rows + potential + sum(v.nbytes for v in vectors)

    @property
    def potential(self) -> Bools:
        """Potential pools, bool (columns x inputs); read-only unless set by setPotential."""
        return self._working().potential

    @property
    def permanences(self) -> Float32s:
        """Permanences, float32 (columns x inputs)."""
        return self._working().permanences

    @property
    def connected_t(self) -> UInt8s:
        """Connected synapses, uint8 (inputs x columns)."""
        return self._working().connected_t

    @property
    def connectedCounts(self) -> Int32s:
        """Connected synapses per column."""
        return self._working().connected_counts

    # ----------------------------------------------------------------- compute
    def compute(self, inputVector: npt.ArrayLike, learn: bool,
                activeArray: npt.NDArray[Any]) -> None:
        """NuPIC-style compute: dense 0/1 input, fills the dense ``activeArray`` in place."""
        active = self.compute_active(inputVector, learn)
        activeArray[:] = 0
        activeArray[active] = 1

    def compute_active(self, input_dense: npt.ArrayLike, learn: bool) -> Int64s:
        """Run one step on a dense 0/1 input; return the sorted active column indices."""
        dense = np.asarray(input_dense)
        if dense.ndim != 1 or dense.shape[0] != self.numInputs:
            raise InvalidInputError(
                f"inputVector must be 1-D of length {self.numInputs}, got shape "
                f"{dense.shape}")
        return self._compute(np.flatnonzero(dense).astype(np.int64), dense != 0, learn)

    def compute_sparse(self, active_inputs: npt.ArrayLike, learn: bool) -> Int64s:
        """Run one step on the indices of the active input bits; return sorted active columns."""
        indices = np.asarray(active_inputs, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.numInputs):
            raise InvalidInputError(f"active input indices must be in [0, {self.numInputs})")
        dense = np.zeros(self.numInputs, dtype=np.bool_)
        dense[indices] = True
        return self._compute(np.flatnonzero(dense), dense, learn)

    def _compute(self, active_inputs: Int64s, input_flags: Bools, learn: bool) -> Int64s:
        """One step on the sorted active input indices and the same input as flags."""
        self.iterationNum += 1
        if learn:
            self.iterationLearnNum += 1
        dense = self._working()
        self.overlaps = compute_overlaps(dense.connected_t, active_inputs, self.numColumns)
        active = self._inhibit(self.overlaps, learn)
        if learn:
            adapt_synapses(dense.permanences, dense.potential, dense.connected_t,
                           dense.connected_counts, active, input_flags, self.synPermActiveInc,
                           self.synPermInactiveDec, self.synPermConnected,
                           self.synPermTrimThreshold)
            self.touched[active] = True
            period = min(self.dutyCyclePeriod, self.iterationNum)
            update_duty_cycles(self.overlapDutyCycles, self.activeDutyCycles, self.overlaps,
                                active, period)
            bump_up_weak_columns(dense.permanences, dense.potential, dense.connected_t,
                                  dense.connected_counts, self.overlapDutyCycles,
                                  self.minOverlapDutyCycles, self.synPermBelowStimulusInc,
                                  self.synPermConnected, self.synPermTrimThreshold,
                                  self.touched)
            self._update_boost_factors()
            if self.iterationNum % UPDATE_PERIOD == 0:
                self.minOverlapDutyCycles[:] = (self.minPctOverlapDutyCycle
                                                * self.overlapDutyCycles.max())
        return active

    def _inhibit(self, overlaps: Int32s, learn: bool) -> Int64s:
        """Global inhibition on (boosted, when learning) overlaps."""
        if not learn or self.boostStrength == 0:
            return winners_integer(overlaps, self.numDesired, self.stimulusThreshold)
        boosted = overlaps.astype(np.float32) * self.boostFactors
        eligible = np.flatnonzero(boosted >= self.stimulusThreshold)
        # Descending score, ties toward the higher index.
        order = np.lexsort((-eligible, -boosted[eligible]))
        return np.sort(eligible[order[: self.numDesired]])

    def _update_boost_factors(self) -> None:
        if self.boostStrength == 0:
            return  # exp(0) == 1 for every column: factors stay at 1
        target = min(np.float32(self.numActiveColumnsPerInhArea) / np.float32(self.numColumns),
                     np.float32(0.5))
        self.boostFactors = np.exp((np.float32(target) - self.activeDutyCycles)
                                   * self.boostStrength).astype(np.float32)

    # ----------------------------------------------------------------- accessors
    def getNumColumns(self) -> int:
        """Number of columns."""
        return self.numColumns

    def getNumInputs(self) -> int:
        """Number of input bits."""
        return self.numInputs

    def getPermanence(self, column: int, permanences: npt.NDArray[Any]) -> None:
        """Copy the column's permanences into ``permanences``."""
        permanences[:] = self.permanences[column]

    def getPotential(self, column: int, potential: npt.NDArray[Any]) -> None:
        """Copy the column's potential pool (0/1) into ``potential``."""
        potential[:] = self.potential[column]

    def getConnectedCounts(self, counts: npt.NDArray[Any]) -> None:
        """Copy the number of connected synapses per column into ``counts``."""
        counts[:] = self.connectedCounts

    def setPermanence(self, column: int, permanences: npt.ArrayLike) -> None:
        """Replace a column's permanences (no raise to threshold, as nupic.core)."""
        row = np.asarray(permanences, dtype=np.float32).copy()
        update_column(row, self.connected_t, column, self.connectedCounts,
                       self.synPermConnected, self.synPermTrimThreshold, False)
        self.permanences[column] = row
        self.touched[column] = True

    def setPotential(self, column: int, potential: npt.ArrayLike) -> None:
        """Replace a column's potential pool."""
        dense = self._working()
        if not dense.potential.flags.writeable:  # still the shared initial pools
            dense = self._dense = dense._replace(potential=dense.potential.copy())
        dense.potential[column] = np.asarray(potential) != 0
        self.potentialModified = True

    # ----------------------------------------------------------------- state
    _PARAMS = ("inputDimensions", "columnDimensions", "potentialRadius", "potentialPct",
               "numActiveColumnsPerInhArea", "stimulusThreshold", "synPermInactiveDec",
               "synPermActiveInc", "synPermConnected", "minPctOverlapDutyCycle",
               "dutyCyclePeriod", "boostStrength", "seed")

    def state_dict(self, prefix: str = "") -> StateDict:
        """Full state: parameters, counters, duty cycles, RNG and the permanence rows of the
        columns changed since initialisation (the rest is regenerated from the seed)."""
        d: StateDict = {f"{prefix}format": STATE_FORMAT}
        for name in self._PARAMS:  # scalars as they are (a checkpoint's header holds them)
            value = getattr(self, name)
            d[f"{prefix}param.{name}"] = np.array(value) if isinstance(value, tuple) else value
        d[f"{prefix}iterationNum"] = self.iterationNum
        d[f"{prefix}iterationLearnNum"] = self.iterationLearnNum
        d[f"{prefix}initChecksum"] = self.initChecksum
        touched = np.flatnonzero(self.touched).astype(np.int32)
        d[f"{prefix}touched_columns"] = touched
        if self._dense is None:
            rows = self._rest_rows
            if self.potentialModified:
                bits = self._rest_potential
                assert bits is not None  # modified pools are kept at rest as packed bits
                d[f"{prefix}potential_bits"] = bits.copy()
        else:
            rows = self._dense.permanences[touched]
            if self.potentialModified:
                d[f"{prefix}potential_bits"] = np.packbits(self._dense.potential, axis=1)
        initial = _initial_state(self._init_key()).permanences
        for name, value in _codec.rows_state(rows, initial, self._code_step(),
                                             row_index=touched).items():
            d[f"{prefix}{name}"] = value
        for name in ("overlapDutyCycles", "activeDutyCycles", "minOverlapDutyCycles",
                     "boostFactors"):
            d[f"{prefix}{name}"] = getattr(self, name).copy()
        d.update(self.random.state_dict(prefix=f"{prefix}rng_"))
        return d

    def _code_step(self) -> float:
        """The unit learning moves a permanence by (the smallest increment), for _codec."""
        steps = [float(v) for v in (self.synPermInactiveDec, self.synPermActiveInc,
                                    self.synPermBelowStimulusInc) if v > 0]
        return min(steps) if steps else 0.0

    @classmethod
    def from_state_dict(cls, d: Mapping[str, StateValue], prefix: str = "") -> SpatialPooler:
        """Rebuild a pooler that continues exactly where the saved one stopped."""
        if int(d[f"{prefix}format"]) not in (1, STATE_FORMAT):
            raise InvalidInputError(
                f"unsupported SpatialPooler state format {d[f'{prefix}format']}")
        params = {name: np.asarray(d[f"{prefix}param.{name}"]).tolist() for name in cls._PARAMS}
        sp = cls(**params, globalInhibition=True)  # regenerates the initial state
        if sp.initChecksum != int(d[f"{prefix}initChecksum"]):
            raise InvalidInputError("SpatialPooler state: the regenerated initial state does "
                                    "not match the saved checksum")
        sp.iterationNum = int(d[f"{prefix}iterationNum"])
        sp.iterationLearnNum = int(d[f"{prefix}iterationLearnNum"])
        touched = np.asarray(d[f"{prefix}touched_columns"], dtype=np.int64)
        if touched.ndim != 1 or touched.size and (touched.min() < 0
                                                  or touched.max() >= sp.numColumns
                                                  or np.any(np.diff(touched) <= 0)):
            raise InvalidInputError("SpatialPooler state: touched columns out of range")
        if int(d[f"{prefix}format"]) == 1:
            rows = np.asarray(d[f"{prefix}touched_permanences"], dtype=np.float32)
        else:
            initial = _initial_state(sp._init_key()).permanences[touched]
            try:
                rows = _codec.rows_from_state({k[len(prefix):]: v for k, v in d.items()
                                               if k.startswith(f"{prefix}perm_")}, initial)
            except ValueError as exc:
                raise InvalidInputError(f"SpatialPooler state: {exc}") from exc
        if rows.shape != (touched.size, sp.numInputs):
            raise InvalidInputError("SpatialPooler state: touched permanences have the wrong shape")
        if f"{prefix}potential_bits" in d:
            bits = np.asarray(d[f"{prefix}potential_bits"], dtype=np.uint8)
            if bits.shape != (sp.numColumns, (sp.numInputs + 7) // 8):
                raise InvalidInputError("SpatialPooler state: potential pools have the wrong shape")
            sp._rest_potential = bits
            sp.potentialModified = True
        sp._rest_rows = rows
        sp.touched[touched] = True
        for name in ("overlapDutyCycles", "activeDutyCycles", "minOverlapDutyCycles",
                     "boostFactors"):
            value = np.array(d[f"{prefix}{name}"], dtype=np.float32)
            if value.shape != (sp.numColumns,):
                raise InvalidInputError(f"SpatialPooler state: {name} has the wrong shape")
            setattr(sp, name, value)
        sp.random = NupicRandom.from_state_dict(d, prefix=f"{prefix}rng_")
        return sp


def _as_dims(dims: object, name: str) -> tuple[int, ...]:
    """Normalise an int or a one-element sequence of ints to a 1-D dimensions tuple."""
    if isinstance(dims, (int, np.integer)):
        dims = (int(dims),)
    message = f"{name} must be an int or a sequence of ints"
    if not isinstance(dims, Iterable):
        raise InvalidInputError(message)
    try:
        result = tuple(int(x) for x in dims)
    except TypeError as exc:
        raise InvalidInputError(message) from exc
    if len(result) != 1 or result[0] <= 0:
        raise InvalidInputError(f"{name}: only one positive dimension is supported, got {dims!r}")
    return result
