"""Raw anomaly score: fraction of active columns that were not predicted."""

import numpy as np
import pytest

from htmengine.algorithms.anomaly import computeRawAnomalyScore


def test_all_predicted_is_zero():
    assert computeRawAnomalyScore([3, 5, 9], [1, 3, 5, 9, 11]) == 0.0


def test_nothing_predicted_is_one():
    assert computeRawAnomalyScore(np.array([3, 5, 9]), np.array([], dtype=np.int64)) == 1.0


def test_partial_prediction_fraction():
    assert computeRawAnomalyScore([1, 2, 3, 4], [2, 4, 6]) == pytest.approx(0.5)
    assert computeRawAnomalyScore(list(range(40)), list(range(30))) == pytest.approx(0.25)


def test_no_active_columns_is_zero_as_in_nupic():
    assert computeRawAnomalyScore([], [1, 2, 3]) == 0.0


def test_returns_python_float():
    assert isinstance(computeRawAnomalyScore(np.array([1]), np.array([1])), float)
