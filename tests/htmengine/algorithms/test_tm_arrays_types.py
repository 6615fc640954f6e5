"""The declared ``TMArrays`` fields match the arrays the TM really works on: each field's
annotated dtype is the one the arrays have after allocation, growth, stepping and a
save/load round trip (the annotations are what mypy checks the kernels against), and the
segment-pool fields sit in ``SEG_FIELDS`` order inside the tuple."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from htmengine.algorithms import _tm_state as S
from htmengine.algorithms.backtracking_tm import BacktrackingTM


def _declared_dtypes() -> dict[str, type]:
    """Field name -> numpy scalar type of its ``npt.NDArray[...]`` annotation."""
    hints = typing.get_type_hints(S.TMArrays)
    out = {}
    for name, hint in hints.items():
        dtype_arg = typing.get_args(hint)[1]  # ndarray[shape, dtype[scalar]]
        out[name] = typing.get_args(dtype_arg)[0]
    return out


def _stepped_tm() -> BacktrackingTM:
    tm = BacktrackingTM(numberOfCols=64, cellsPerColumn=4, activationThreshold=2,
                        minThreshold=1, newSynapseCount=4, maxSynapsesPerSegment=8,
                        maxSegmentsPerCell=8, seed=7)
    rng = np.random.default_rng(3)
    for _ in range(30):
        cols = np.sort(rng.choice(64, size=6, replace=False)).astype(np.int32)
        tm.compute_columns(cols, True, True)
    return tm


def test_every_field_is_annotated_in_order() -> None:
    hints = typing.get_type_hints(S.TMArrays)
    assert tuple(hints) == S.TMArrays._fields
    start = S.TMArrays._fields.index(S.SEG_FIELDS[0])
    assert S.TMArrays._fields[start:start + len(S.SEG_FIELDS)] == S.SEG_FIELDS


@pytest.mark.parametrize("stage", ["fresh", "stepped", "reserved", "reloaded"])
def test_arrays_have_their_declared_dtypes(stage: str) -> None:
    tm = BacktrackingTM(numberOfCols=64, cellsPerColumn=4) if stage == "fresh" \
        else _stepped_tm()
    a = tm._a
    if stage == "reserved":
        a = S.reserve(a, 10_000)  # grows every pool
        assert a.seg_n.shape[0] > tm._a.seg_n.shape[0]
    elif stage == "reloaded":
        tm.dehydrate()
        a = tm._a  # rebuilt from the packed state
    declared = _declared_dtypes()
    wrong = {name: (arr.dtype.name, np.dtype(declared[name]).name)
             for name, arr in a._asdict().items() if arr.dtype.type is not declared[name]}
    assert wrong == {}
