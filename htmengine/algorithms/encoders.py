"""Input encoders of the scalar-with-time-of-day anomaly model (NuPIC semantics).

* ``ScalarEncoder``: NuPIC's plain scalar encoder (periodic or not), used for the time of day.
* ``DateEncoder``: only the time-of-day part (value = hour + minute / 60, seconds ignored).
* ``RandomDistributedScalarEncoder``: NuPIC's RDSE with lazily created buckets and NuPIC's RNG.
* ``ScalarWithTimeOfDayEncoder``: the composite input of the model, built from the model
  params' ``sensorParams["encoders"]`` and laid out like NuPIC's MultiEncoder (encoders sorted
  by name, ``None`` entries skipped), i.e. the 54 time-of-day bits then the 400 value bits.

All ``encode`` methods return the sorted indices of the active bits (``np.int64``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from htmengine.algorithms._types import StateDict, StateValue, is_integral, is_number, is_real
from htmengine.algorithms.nupic_random import NupicRandom
from htmengine.exceptions import InvalidInputError

RDSE_MAX_BUCKETS = 1000

Bits: TypeAlias = npt.NDArray[np.int64]
EncoderSpec: TypeAlias = Mapping[str, Any]  # one entry of sensorParams["encoders"] (JSON)


def _is_nan(value: object) -> bool:
    """True for a float NaN (with None, NuPIC's missing-data sentinels)."""
    return isinstance(value, float) and math.isnan(value)


def _round_half_away(value: float) -> int:
    """Python 2 ``round`` (half away from zero), which NuPIC's RDSE relied on."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


class ScalarEncoder:
    """NuPIC ``ScalarEncoder``: a contiguous block of ``w`` bits whose position encodes the value."""

    def __init__(self, w: int, minval: float, maxval: float, periodic: bool = False, n: int = 0,
                 radius: float = 0, resolution: float = 0, name: str | None = None,
                 clipInput: bool = False, forced: bool = False) -> None:
        if not is_integral(w) or w <= 0 or w % 2 == 0:
            raise InvalidInputError(f"ScalarEncoder w must be an odd positive integer, got {w!r}")
        if not forced and w < 21:
            raise InvalidInputError(f"ScalarEncoder w ({w}) must be >= 21 (use forced=True)")
        if minval >= maxval:
            raise InvalidInputError(
                f"ScalarEncoder minval {minval} must be strictly less than maxval {maxval}")
        self.w = int(w)
        self.minval = minval
        self.maxval = maxval
        self.periodic = bool(periodic)
        self.clipInput = bool(clipInput)
        self.halfwidth = (self.w - 1) // 2
        self.padding = 0 if self.periodic else self.halfwidth
        self.rangeInternal = float(maxval - minval)
        given = [name_ for name_, v in (("n", n), ("radius", radius), ("resolution", resolution))
                 if v]
        if len(given) != 1:
            raise InvalidInputError(
                f"ScalarEncoder needs exactly one of n/radius/resolution, got {given or 'none'}")
        if n:
            if n <= self.w:
                raise InvalidInputError(f"ScalarEncoder n ({n}) must be greater than w ({w})")
            self.n = int(n)
            slots = self.n if self.periodic else self.n - self.w
            self.resolution = self.rangeInternal / slots
            self.radius = self.w * self.resolution
            self.range = self.rangeInternal if self.periodic else (
                self.rangeInternal + self.resolution)
        else:
            if radius:
                self.radius = float(radius)
                self.resolution = self.radius / self.w
            else:
                self.resolution = float(resolution)
                self.radius = self.resolution * self.w
            self.range = self.rangeInternal if self.periodic else (
                self.rangeInternal + self.resolution)
            self.n = int(math.ceil(self.w * (self.range / self.radius) + 2 * self.padding))
        self.nInternal = self.n - 2 * self.padding
        self.name = name if name is not None else f"[{minval}:{maxval}]"

    def getWidth(self) -> int:
        """Number of output bits."""
        return self.n

    def first_on_bit(self, value: float) -> int:
        """Index of the first active bit (may be negative for a wrapping periodic block)."""
        if value < self.minval:
            if self.clipInput and not self.periodic:
                value = self.minval
            else:
                raise InvalidInputError(
                    f"{self.name}: input {value} less than range [{self.minval}, {self.maxval}]")
        if self.periodic:
            if value >= self.maxval:
                raise InvalidInputError(
                    f"{self.name}: input {value} not below periodic maximum {self.maxval}")
            centre = int((value - self.minval) * self.nInternal / self.range) + self.padding
        else:
            if value > self.maxval:
                if not self.clipInput:
                    raise InvalidInputError(
                        f"{self.name}: input {value} greater than range "
                        f"[{self.minval}, {self.maxval}]")
                value = self.maxval
            centre = int(((value - self.minval) + self.resolution / 2) / self.resolution
                         ) + self.padding
        return centre - self.halfwidth

    def encode(self, value: float | None) -> Bits:
        """Sorted indices of the active bits; missing value (None/NaN) → no bits."""
        if value is None or _is_nan(value):
            return np.zeros(0, dtype=np.int64)
        if not is_number(value) or isinstance(value, bool):
            raise InvalidInputError(f"{self.name}: expected a number, got {type(value).__name__}")
        first = self.first_on_bit(value)
        bits = np.arange(first, first + self.w, dtype=np.int64)
        if self.periodic:
            bits %= self.n
            bits.sort()
        return bits


class DateEncoder:
    """NuPIC ``DateEncoder`` restricted to its time-of-day sub-encoder."""

    def __init__(self, timeOfDay: int | tuple[float, float] | list[float] = 0, name: str = "",
                 forced: bool = False, **unsupported: object) -> None:
        active_unsupported = {k: v for k, v in unsupported.items()
                              if v not in (0, None, False) and k not in ("fieldname", "type")}
        if active_unsupported:
            raise InvalidInputError(
                f"DateEncoder: only timeOfDay is supported, got {sorted(active_unsupported)}")
        if not timeOfDay:
            raise InvalidInputError("DateEncoder: timeOfDay must be given")
        if isinstance(timeOfDay, (tuple, list)):
            width, radius = timeOfDay
        else:
            width, radius = timeOfDay, 4
        self.name = name
        self.timeOfDayEncoder = ScalarEncoder(w=int(width), minval=0, maxval=24, periodic=True,
                                              radius=radius, name="time of day", forced=forced)

    def getWidth(self) -> int:
        """Number of output bits."""
        return self.timeOfDayEncoder.getWidth()

    @staticmethod
    def time_of_day(timestamp: datetime) -> float:
        """Hours since midnight as NuPIC computes it: hour + minute / 60 (seconds ignored)."""
        return timestamp.hour + float(timestamp.minute) / 60.0

    def encode(self, timestamp: datetime | None) -> Bits:
        """Sorted indices of the active bits; None → no bits."""
        if timestamp is None:
            return np.zeros(0, dtype=np.int64)
        if not isinstance(timestamp, datetime):
            raise InvalidInputError(
                f"timestamp must be a datetime, got {type(timestamp).__name__}")
        return self.timeOfDayEncoder.encode(self.time_of_day(timestamp))


class RandomDistributedScalarEncoder:
    """NuPIC's RDSE: value → bucket → random ``w``-of-``n`` SDR, buckets created on demand.

    Neighbouring buckets differ in exactly one bit (the one at position ``index % w``), buckets
    less than ``w`` apart overlap by ``w - distance`` bits, farther ones by at most
    ``maxOverlap`` bits.
    """

    def __init__(self, resolution: float, w: int = 21, n: int = 400, name: str | None = None,
                 offset: float | None = None, seed: int = 42, verbosity: int = 0) -> None:
        if not is_integral(w) or w <= 0 or w % 2 == 0:
            raise InvalidInputError(f"RDSE w must be an odd positive integer, got {w!r}")
        if not is_real(resolution) or not resolution > 0:
            raise InvalidInputError(f"RDSE resolution must be a positive number, got {resolution!r}")
        if not is_integral(n) or n <= 6 * w:
            raise InvalidInputError(f"RDSE n must be an int strictly greater than 6*w, got {n!r}")
        self.w = int(w)
        self.n = int(n)
        self.resolution = float(resolution)
        self.maxOverlap = 2
        self.maxBuckets = RDSE_MAX_BUCKETS
        self.verbosity = verbosity
        if seed == -1:
            seed = int.from_bytes(os.urandom(4), "little") | 1
        self.random = NupicRandom(seed)
        self.offset = None if offset is None else float(offset)
        self.minIndex = self.maxIndex = self.maxBuckets // 2
        self.numTries = 0
        self.bucket_bits = np.full((self.maxBuckets, self.w), -1, dtype=np.int16)
        permutation = np.arange(self.n, dtype=np.uint32)
        self.random.shuffle(permutation)
        self.bucket_bits[self.minIndex] = permutation[: self.w]
        self.name = name if name is not None else f"[{self.resolution}]"

    def getWidth(self) -> int:
        """Number of output bits."""
        return self.n

    def getBucketIndex(self, value: float | None) -> int | None:
        """Bucket of ``value`` (the first value seen sets the offset); None for missing."""
        if value is None or _is_nan(value):
            return None
        if self.offset is None:
            self.offset = float(value)
        index = self.maxBuckets // 2 + _round_half_away((value - self.offset) / self.resolution)
        return min(max(index, 0), self.maxBuckets - 1)

    def mapBucketIndexToNonZeroBits(self, index: int) -> Bits:
        """Active bits of bucket ``index`` (clipped to the range), creating it if needed."""
        index = min(max(int(index), 0), self.maxBuckets - 1)
        if index < self.minIndex:
            for new_index in range(self.minIndex - 1, index - 1, -1):
                self.bucket_bits[new_index] = self._new_representation(self.minIndex, new_index)
                self.minIndex = new_index
        elif index > self.maxIndex:
            for new_index in range(self.maxIndex + 1, index + 1):
                self.bucket_bits[new_index] = self._new_representation(self.maxIndex, new_index)
                self.maxIndex = new_index
        bits: Bits = self.bucket_bits[index].astype(np.int64)
        return bits

    def encode(self, value: float | None) -> Bits:
        """Sorted indices of the active bits; missing value (None/NaN) → no bits."""
        if value is not None and (not is_number(value)
                                  or isinstance(value, bool)):
            raise InvalidInputError(f"value must be a number, got {type(value).__name__}")
        index = self.getBucketIndex(value)
        if index is None:
            return np.zeros(0, dtype=np.int64)
        bits = self.mapBucketIndexToNonZeroBits(index)
        bits.sort()
        return bits

    def _new_representation(self, neighbour: int, new_index: int) -> npt.NDArray[np.int16]:
        """Copy of the neighbour's bits with slot ``new_index % w`` replaced by a fresh bit."""
        base: npt.NDArray[np.int16] = self.bucket_bits[neighbour]
        candidate = base.copy()
        slot = new_index % self.w
        while True:
            new_bit = self.random.get_uint32(self.n)
            candidate[slot] = new_bit
            if new_bit not in base and self._representation_ok(candidate, new_index):
                return candidate
            self.numTries += 1

    def _representation_ok(self, candidate: npt.NDArray[np.int16], new_index: int) -> bool:
        """Whether ``candidate`` meets the overlap rules against every existing bucket."""
        binary = np.zeros(self.n, dtype=np.bool_)
        binary[candidate] = True
        existing = self.bucket_bits[self.minIndex:self.maxIndex + 1]
        overlaps = binary[existing].sum(axis=1)
        distances = np.abs(np.arange(self.minIndex, self.maxIndex + 1) - new_index)
        near = distances < self.w
        return bool(np.all(np.where(near, overlaps == self.w - distances,
                                    overlaps <= self.maxOverlap)))

    def state_dict(self, prefix: str = "") -> StateDict:
        """Everything needed to continue identically (buckets built so far, offset, RNG)."""
        d: StateDict = {
            f"{prefix}resolution": self.resolution, f"{prefix}w": self.w, f"{prefix}n": self.n,
            f"{prefix}offset": np.nan if self.offset is None else self.offset,
            f"{prefix}has_offset": int(self.offset is not None),
            f"{prefix}min_index": self.minIndex, f"{prefix}max_index": self.maxIndex,
            f"{prefix}num_tries": self.numTries, f"{prefix}name": self.name,
            f"{prefix}buckets": self.bucket_bits[self.minIndex:self.maxIndex + 1].copy(),
        }
        d.update(self.random.state_dict(prefix=f"{prefix}rng_"))
        return d

    @classmethod
    def from_state_dict(cls, d: Mapping[str, StateValue],
                        prefix: str = "") -> RandomDistributedScalarEncoder:
        """Rebuild an encoder saved with ``state_dict``."""
        enc = cls.__new__(cls)
        enc.resolution = float(d[f"{prefix}resolution"])
        enc.w = int(d[f"{prefix}w"])
        enc.n = int(d[f"{prefix}n"])
        enc.maxOverlap = 2
        enc.maxBuckets = RDSE_MAX_BUCKETS
        enc.verbosity = 0
        enc.offset = float(d[f"{prefix}offset"]) if int(d[f"{prefix}has_offset"]) else None
        enc.minIndex = int(d[f"{prefix}min_index"])
        enc.maxIndex = int(d[f"{prefix}max_index"])
        enc.numTries = int(d[f"{prefix}num_tries"])
        enc.name = str(d[f"{prefix}name"])
        enc.bucket_bits = np.full((enc.maxBuckets, enc.w), -1, dtype=np.int16)
        enc.bucket_bits[enc.minIndex:enc.maxIndex + 1] = d[f"{prefix}buckets"]
        enc.random = NupicRandom.from_state_dict(d, prefix=f"{prefix}rng_")
        return enc


# (name, field, encoder, offset of its first bit) of a ScalarWithTimeOfDayEncoder part
_Part: TypeAlias = tuple[str, str, DateEncoder | RandomDistributedScalarEncoder, int]


class ScalarWithTimeOfDayEncoder:
    """The model's input: NuPIC MultiEncoder over ``sensorParams["encoders"]``.

    Supports the encoders of ``getScalarMetricWithTimeOfDayAnomalyParams``: DateEncoders
    (time of day) on the timestamp field and RDSEs on the value field, concatenated in the
    sorted order of their names.
    """

    def __init__(self, encoders: Mapping[str, EncoderSpec | None], timestampField: str = "c0",
                 valueField: str = "c1") -> None:
        if not isinstance(encoders, dict):
            raise InvalidInputError("encoders must be a dict of encoder params")
        self.timestampField = timestampField
        self.valueField = valueField
        self.parts: list[_Part] = []
        width = 0
        for key in sorted(encoders):
            spec = encoders[key]
            if spec is None:
                continue
            spec = dict(spec)
            kind = spec.pop("type", None)
            field = spec.pop("fieldname", None)
            name = spec.pop("name", key)
            if kind == "DateEncoder":
                if field != timestampField:
                    raise InvalidInputError(f"encoder {key}: DateEncoder must read {timestampField}")
                encoder: DateEncoder | RandomDistributedScalarEncoder = DateEncoder(name=name,
                                                                                    **spec)
            elif kind == "RandomDistributedScalarEncoder":
                if field != valueField:
                    raise InvalidInputError(f"encoder {key}: RDSE must read {valueField}")
                spec.pop("numBuckets", None)
                if "resolution" not in spec:
                    raise InvalidInputError(f"encoder {key}: RDSE needs a resolution")
                encoder = RandomDistributedScalarEncoder(name=name, **spec)
            else:
                raise InvalidInputError(f"encoder {key}: unsupported encoder type {kind!r}")
            self.parts.append((key, field, encoder, width))
            width += encoder.getWidth()
        if not self.parts:
            raise InvalidInputError("encoders: no encoder given")
        self.width = width

    def getWidth(self) -> int:
        """Total number of input bits (454 for the standard params)."""
        return self.width

    def encode(self, timestamp: datetime | None, value: float | None) -> Bits:
        """Sorted indices of the active input bits of one record."""
        chunks = []
        for _key, _field, encoder, offset in self.parts:
            # DateEncoders read the timestamp field, RDSEs the value field (checked in __init__)
            if isinstance(encoder, DateEncoder):
                chunks.append(encoder.encode(timestamp) + offset)
            else:
                chunks.append(encoder.encode(value) + offset)
        return np.concatenate(chunks)

    def encode_dense(self, timestamp: datetime | None,
                     value: float | None) -> npt.NDArray[np.uint8]:
        """The record's input as a dense 0/1 ``uint8`` array of ``getWidth()`` bits."""
        dense = np.zeros(self.width, dtype=np.uint8)
        dense[self.encode(timestamp, value)] = 1
        return dense

    def rdse_parts(self) -> list[tuple[str, RandomDistributedScalarEncoder]]:
        """The stateful (RDSE) sub-encoders by name."""
        return [(key, enc) for key, _f, enc, _o in self.parts
                if isinstance(enc, RandomDistributedScalarEncoder)]

    def state_dict(self, prefix: str = "") -> StateDict:
        """State of the stateful sub-encoders (the time-of-day encoder has none)."""
        d: StateDict = {}
        for key, enc in self.rdse_parts():
            d.update(enc.state_dict(prefix=f"{prefix}{key}."))
        return d

    def load_state_dict(self, d: Mapping[str, StateValue], prefix: str = "") -> None:
        """Replace the RDSE sub-encoders by the saved ones (same encoder params assumed)."""
        restored: list[_Part] = []
        for key, field, enc, offset in self.parts:
            if isinstance(enc, RandomDistributedScalarEncoder):
                enc = RandomDistributedScalarEncoder.from_state_dict(d, prefix=f"{prefix}{key}.")
            restored.append((key, field, enc, offset))
        self.parts = restored

    @classmethod
    def from_state_dict(cls, encoders: Mapping[str, EncoderSpec | None],
                        d: Mapping[str, StateValue],
                        prefix: str = "") -> ScalarWithTimeOfDayEncoder:
        """Build from the encoder params and restore the saved RDSE state."""
        composite = cls(encoders)
        composite.load_state_dict(d, prefix=prefix)
        return composite
