"""Type aliases shared by the model components' annotations (no behaviour of their own).

A component's ``state_dict`` maps names to arrays and scalars; a checkpoint gives the same
values back (arrays, numpy scalars, or JSON numbers and strings), which ``from_state_dict``
checks before it uses them. Also the number checks of the components' argument validation.
"""

from __future__ import annotations

import numbers
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

StateValue: TypeAlias = npt.NDArray[Any] | np.generic | int | float | str
StateDict: TypeAlias = dict[str, StateValue]


# isinstance checks against the ``numbers`` ABCs. They take ``object``: a parameter annotated
# ``int`` or ``float`` that is checked at run time (it may be anything a caller passes) would
# otherwise make mypy treat ``isinstance(value, numbers.Integral)`` as never true (int is only
# registered with the ABC at run time) and skip the code after the check.
def is_integral(value: object) -> bool:
    """True for any integral number (int, bool, numpy integers), as ``numbers.Integral``."""
    return isinstance(value, numbers.Integral)


def is_real(value: object) -> bool:
    """True for any real number (``numbers.Real``: int, float, numpy ints and floats)."""
    return isinstance(value, numbers.Real)


def is_number(value: object) -> bool:
    """True for any number (``numbers.Number``: int, float, complex, numpy scalars)."""
    return isinstance(value, numbers.Number)
