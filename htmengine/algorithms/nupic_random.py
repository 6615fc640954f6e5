"""NuPIC's pseudo-random generator (nupic.core ``Random``), re-implemented with numba.

The generator is the additive lagged-Fibonacci scheme of BSD ``random()`` (31 words of state,
separation 3, seeded with the Park-Miller recurrence and warmed up by 310 draws), as used by
nupic.core's SpatialPooler and by the Python RandomDistributedScalarEncoder through the
bindings. Reproducing it lets our encoders and spatial pooler draw the same numbers as NuPIC.

The state lives in two small numpy arrays so that numba kernels (the spatial pooler's
initialisation) can draw from it directly with the ``rng_*`` functions below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from numba import njit

from htmengine.algorithms._types import StateDict, StateValue

STATE_SIZE = 31
SEPARATION = 3
MAX32 = 0xFFFFFFFF
_MAX32_U64 = np.uint64(MAX32)

_State: TypeAlias = npt.NDArray[np.uint32]  # the 31 state words
_Ptrs: TypeAlias = npt.NDArray[np.int64]  # front and rear positions in the state
_Ints: TypeAlias = npt.NDArray[np.int64]


@njit(cache=True)
def rng_seed_state(seed: int, state: _State, ptrs: _Ptrs) -> None:
    """Fill ``state`` (uint32[31]) and ``ptrs`` (int64[2]: front, rear) for ``seed``."""
    state[0] = np.uint32(np.uint64(seed) % _MAX32_U64)
    for i in range(1, STATE_SIZE):
        previous = np.int64(state[i - 1])
        quot = previous // 127773
        rem = previous % 127773
        test = 16807 * rem - 2836 * quot
        if test < 0:
            test += 2147483647
        state[i] = np.uint32(test % MAX32)
    ptrs[0] = SEPARATION
    ptrs[1] = 0
    for _ in range(10 * STATE_SIZE):
        rng_next_raw(state, ptrs)


@njit(cache=True)
def rng_next_raw(state: _State, ptrs: _Ptrs) -> np.uint64:
    """One raw 31-bit draw (``RandomImpl::getUInt32``)."""
    front = ptrs[0]
    rear = ptrs[1]
    total = (np.uint64(state[front]) + np.uint64(state[rear])) % _MAX32_U64
    state[front] = np.uint32(total)
    value = (total >> np.uint64(1)) & np.uint64(0x7FFFFFFF)
    front += 1
    if front >= STATE_SIZE:
        front = 0
        rear += 1
    else:
        rear += 1
        if rear >= STATE_SIZE:
            rear = 0
    ptrs[0] = front
    ptrs[1] = rear
    return value


@njit(cache=True)
def rng_uint32(state: _State, ptrs: _Ptrs, upper: int | np.integer[Any]) -> np.int64:
    """Uniform integer in [0, upper) by rejection (``Random::getUInt32(max)``)."""
    upper_u = np.uint64(upper)
    smax = _MAX32_U64 - (_MAX32_U64 % upper_u)
    sample = rng_next_raw(state, ptrs)
    while sample > smax:
        sample = rng_next_raw(state, ptrs)
    return np.int64(sample % upper_u)


@njit(cache=True)
def rng_uint64(state: _State, ptrs: _Ptrs, upper: np.uint64) -> np.uint64:
    """Uniform integer in [0, upper) from two raw draws (``Random::getUInt64(max)``)."""
    max64 = np.uint64(0xFFFFFFFFFFFFFFFF)
    smax = max64 - (max64 % upper)
    while True:
        low = rng_next_raw(state, ptrs)
        high = rng_next_raw(state, ptrs)
        sample = low | (high << np.uint64(32))
        if sample <= smax:
            return sample % upper


@njit(cache=True)
def rng_real64(state: _State, ptrs: _Ptrs) -> float:
    """Uniform double in [0, 1) with 48 random mantissa bits (``Random::getReal64``)."""
    value = rng_uint64(state, ptrs, np.uint64(1) << np.uint64(48))
    return float(value) / 281474976710656.0


@njit(cache=True)
def rng_shuffle(state: _State, ptrs: _Ptrs, values: npt.NDArray[np.integer[Any]]) -> None:
    """In-place shuffle exactly as ``Random::shuffle`` (swap each slot with a later one)."""
    remaining = values.shape[0]
    for first in range(values.shape[0]):
        offset = rng_uint32(state, ptrs, remaining)
        other = first + offset
        tmp = values[first]
        values[first] = values[other]
        values[other] = tmp
        remaining -= 1


@njit(cache=True)
def rng_sample(state: _State, ptrs: _Ptrs, population: npt.NDArray[np.integer[Any]],
               n_choices: int | np.integer[Any]) -> npt.NDArray[Any]:
    """Ordered selection sampling of ``n_choices`` items (``Random::sample``), in the
    population's dtype (int64 for the pooler, int32 for the TM; a TypeVar would not survive
    numba's ``Dispatcher`` type)."""
    n_population = population.shape[0]
    choices = np.empty(n_choices, dtype=population.dtype)
    next_choice = 0
    if n_choices == 0:
        return choices
    for i in range(n_population):
        if rng_uint32(state, ptrs, n_population - i) < n_choices - next_choice:
            choices[next_choice] = population[i]
            next_choice += 1
            if next_choice == n_choices:
                break
    return choices


class NupicRandom:
    """Python handle on a NuPIC ``Random`` stream (seeded like ``Random(seed)``)."""

    def __init__(self, seed: int) -> None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed <= 0:
            raise ValueError(f"seed must be a positive integer, got {seed!r}")
        self.seed = int(seed)
        self.state = np.zeros(STATE_SIZE, dtype=np.uint32)
        self.ptrs = np.zeros(2, dtype=np.int64)
        rng_seed_state(self.seed, self.state, self.ptrs)

    def get_uint32(self, upper: int = MAX32) -> int:
        """Uniform integer in [0, upper)."""
        if upper <= 0:
            raise ValueError(f"upper must be positive, got {upper!r}")
        return int(rng_uint32(self.state, self.ptrs, int(upper)))

    def get_uint64(self, upper: int = 0xFFFFFFFFFFFFFFFF) -> int:
        """Uniform 64-bit integer in [0, upper)."""
        if upper <= 0:
            raise ValueError(f"upper must be positive, got {upper!r}")
        return int(rng_uint64(self.state, self.ptrs, np.uint64(upper)))

    def get_real64(self) -> float:
        """Uniform float in [0, 1)."""
        return float(rng_real64(self.state, self.ptrs))

    def shuffle(self, values: npt.NDArray[np.integer[Any]]) -> None:
        """Shuffle a 1-D array in place."""
        rng_shuffle(self.state, self.ptrs, values)

    def sample(self, population: _Ints, n_choices: int) -> _Ints:
        """Pick ``n_choices`` items of ``population`` keeping their order."""
        if n_choices > population.shape[0]:
            raise ValueError("population size must be greater than number of choices")
        return rng_sample(self.state, self.ptrs, population, int(n_choices))

    def state_dict(self, prefix: str = "") -> StateDict:
        """The generator's full state under ``prefix``-ed keys."""
        return {f"{prefix}seed": self.seed, f"{prefix}state": self.state.copy(),
                f"{prefix}ptrs": self.ptrs.copy()}

    @classmethod
    def from_state_dict(cls, d: Mapping[str, StateValue], prefix: str = "") -> NupicRandom:
        """Rebuild a generator that continues exactly where the saved one stopped."""
        rng = cls.__new__(cls)
        rng.seed = int(d[f"{prefix}seed"])
        rng.state = np.array(d[f"{prefix}state"], dtype=np.uint32).copy()
        rng.ptrs = np.array(d[f"{prefix}ptrs"], dtype=np.int64).copy()
        if rng.state.shape != (STATE_SIZE,) or rng.ptrs.shape != (2,):
            raise ValueError("corrupt random generator state")
        return rng
