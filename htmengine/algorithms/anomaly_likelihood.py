"""Anomaly likelihood: how unusual the recent raw anomaly scores of a model are.

Two ways to use it, both with NuPIC's semantics:

* :class:`AnomalyLikelihood`, the streaming helper used by NAB's ``numenta`` detector: feed it
  one (value, raw score) at a time; it reports 0.5 while learning and then
  1 - tail probability of the 10-record moving average of raw scores under a normal
  distribution re-fitted every `reestimationPeriod` records on the recent history.
* the functional API used by the anomaly service (the htmengine variant):
  :func:`estimateAnomalyLikelihoods` fits the distribution on a batch of
  ``(timestamp, value, rawScore)`` records, :func:`updateAnomalyLikelihoods` scores new
  records with it. Both return ``(likelihoods, avgRecordList, params)`` where ``likelihoods``
  are filtered *tail probabilities* (small = unusual) and ``params`` is JSON-serializable::

      {"distribution": {"name": "normal", "mean", "variance", "stdev"},
       "movingAverage": {"historicalValues": [...], "total": float, "windowSize": int},
       "historicalLikelihoods": [...]}   # last windowSize unfiltered tail probabilities
"""

from __future__ import annotations

import collections
import json
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from htmengine.algorithms._types import is_integral, is_number, is_real
from htmengine.algorithms.anomaly_likelihood_stats import (
    FLAT_METRIC_VARIANCE,
    _filterLikelihoods,
    estimateNormal,
    isValidEstimatorParams,
    moving_average_step,
    nullDistribution,
    tailProbability,
)
from htmengine.exceptions import InvalidInputError

__all__ = [
    "AnomalyLikelihood",
    "estimateAnomalyLikelihoods",
    "updateAnomalyLikelihoods",
    "estimateNormal",
    "nullDistribution",
    "tailProbability",
    "isValidEstimatorParams",
    "_filterLikelihoods",
]

AnomalyRecord = Sequence[Any]  # (timestamp, value, rawAnomalyScore)
_HistoryRecord = tuple[Any, Any, float]  # (timestamp, value, rawAnomalyScore) as kept
_Floats = npt.NDArray[np.float64]


def _check_record(record: Any, index: int) -> None:
    """Raise InvalidInputError unless `record` is a 3-item list/tuple."""
    if not isinstance(record, (list, tuple)) or len(record) != 3:
        raise InvalidInputError(
            f"anomalyScores[{index}] must be a (timestamp, value, rawScore) record, got {record!r}"
        )


def _anomalyScoreMovingAverage(
    anomalyScores: Sequence[AnomalyRecord], windowSize: int = 10, verbosity: int = 0
) -> tuple[list[list[Any]], list[float], float]:
    """Average the raw scores over a sliding window of `windowSize` records.

    Returns ``([[timestamp, value, averagedScore], ...], windowValues, windowTotal)``; only the
    anomaly score is averaged.
    """
    window: list[float] = []
    total = 0.0
    averaged: list[list[Any]] = []
    for index, record in enumerate(anomalyScores):
        _check_record(record, index)
        average, window, total = moving_average_step(window, total, float(record[2]), windowSize)
        averaged.append([record[0], record[1], average])
        if verbosity > 2:
            print("Aggregating input record:", record, "->", averaged[-1])
    return averaged, window, total


def _fit_distribution(
    aggRecordList: list[list[Any]], skipRecords: int, verbosity: int
) -> dict[str, Any]:
    """Fit the normal distribution of averaged scores, with the null cases of NuPIC.

    Too few records (<= skipRecords) or a flat metric (values with variance < 1.5e-5, checked
    only when every value is a number) give the null distribution.
    """
    if len(aggRecordList) <= skipRecords:
        return nullDistribution(verbosity=verbosity)
    averages = np.array([r[2] for r in aggRecordList], dtype=np.float64)
    distribution = estimateNormal(averages[skipRecords:])
    if all(is_number(r[1]) for r in aggRecordList):
        values = np.array([r[1] for r in aggRecordList], dtype=np.float64)
        metric = estimateNormal(values[skipRecords:], performLowerBoundCheck=False)
        if metric["variance"] < FLAT_METRIC_VARIANCE:
            distribution = nullDistribution(verbosity=verbosity)
    return distribution


def _check_window(averagingWindow: Any) -> None:
    """Raise InvalidInputError unless the averaging window is a positive integer."""
    if not is_integral(averagingWindow) or averagingWindow <= 0:
        raise InvalidInputError(
            f"averagingWindow must be a positive integer, got {averagingWindow!r}"
        )


def _estimate_params(
    anomalyScores: Sequence[AnomalyRecord],
    averagingWindow: int,
    skipRecords: int,
    verbosity: int,
    all_likelihoods: bool,
) -> tuple[_Floats, list[list[Any]], dict[str, Any]]:
    """Shared body of estimateAnomalyLikelihoods; without `all_likelihoods` only the tail
    probabilities kept in the params (the last `averagingWindow`) are computed."""
    if len(anomalyScores) == 0:
        raise InvalidInputError("anomalyScores must hold at least one record")
    _check_window(averagingWindow)
    if not is_integral(skipRecords) or skipRecords < 0:
        raise InvalidInputError(f"skipRecords must be a non-negative integer, got {skipRecords!r}")
    aggRecordList, windowValues, total = _anomalyScoreMovingAverage(
        anomalyScores, windowSize=averagingWindow, verbosity=verbosity
    )
    distribution = _fit_distribution(aggRecordList, int(skipRecords), verbosity)
    kept = len(aggRecordList) if all_likelihoods else min(averagingWindow, len(aggRecordList))
    likelihoods = np.array(
        [tailProbability(r[2], distribution) for r in aggRecordList[-kept:]], dtype=np.float64
    )
    params = {
        "distribution": distribution,
        "movingAverage": {
            "historicalValues": list(windowValues),
            "total": float(total),
            "windowSize": int(averagingWindow),
        },
        "historicalLikelihoods": [
            float(v) for v in likelihoods[-min(averagingWindow, len(likelihoods)) :]
        ],
    }
    return likelihoods, aggRecordList, params


def estimateAnomalyLikelihoods(
    anomalyScores: Sequence[AnomalyRecord],
    averagingWindow: int = 10,
    skipRecords: int = 0,
    verbosity: int = 0,
) -> tuple[_Floats, list[list[Any]], dict[str, Any]]:
    """Fit the distribution of averaged anomaly scores and score every record with it.

    `anomalyScores` are ``(timestamp, value, rawScore)`` records (best 1000-10000 of them);
    the first `skipRecords` averaged records are left out of the fit (all of them or more →
    null distribution). Returns ``(filtered tail probabilities, averaged records, params)``.
    """
    if verbosity > 1:
        print("estimateAnomalyLikelihoods:", len(anomalyScores), "records, skip", skipRecords)
    likelihoods, aggRecordList, params = _estimate_params(
        anomalyScores, averagingWindow, skipRecords, verbosity, all_likelihoods=True
    )
    filtered = np.array(_filterLikelihoods(likelihoods), dtype=np.float64)
    if verbosity > 1:
        print("Discovered params=", params)
    return filtered, aggRecordList, params


def updateAnomalyLikelihoods(
    anomalyScores: Sequence[AnomalyRecord], params: dict[str, Any], verbosity: int = 0
) -> tuple[_Floats, _Floats, dict[str, Any]]:
    """Score new ``(timestamp, value, rawScore)`` records with the distribution in `params`.

    Continues the moving average and the filter from `params`; returns
    ``(filtered tail probabilities, averaged scores, new params)``. Unlike NuPIC, the given
    `params` are never modified (NuPIC mutated the stored window list in place).
    """
    if len(anomalyScores) == 0:
        raise InvalidInputError("anomalyScores must hold at least one record")
    if not isValidEstimatorParams(params):
        raise InvalidInputError(f"params is not a valid estimator params structure: {params!r}")
    moving = params["movingAverage"]
    windowSize = moving["windowSize"]
    _check_window(windowSize)
    window = [float(v) for v in moving["historicalValues"]]
    total = moving["total"]
    distribution = params["distribution"]
    # Older params had no stored likelihoods; NuPIC treated that as one unremarkable value.
    history = [float(v) for v in params.get("historicalLikelihoods", [1.0])]

    averages = np.zeros(len(anomalyScores), dtype=np.float64)
    likelihoods = np.zeros(len(anomalyScores), dtype=np.float64)
    for index, record in enumerate(anomalyScores):
        _check_record(record, index)
        average, window, total = moving_average_step(window, total, float(record[2]), windowSize)
        averages[index] = average
        likelihoods[index] = tailProbability(average, distribution)

    combined = history + [float(v) for v in likelihoods]
    filtered = _filterLikelihoods(combined)
    likelihoods[:] = filtered[-len(likelihoods) :]
    newParams = {
        "distribution": dict(distribution),  # flat dict of numbers and a name
        "movingAverage": {"historicalValues": window, "total": total, "windowSize": windowSize},
        "historicalLikelihoods": combined[-min(windowSize, len(combined)) :],
    }
    if verbosity > 3:
        print("updateAnomalyLikelihoods: likelihoods", likelihoods[:20])
    return likelihoods, averages, newParams


class AnomalyLikelihood:
    """Streaming anomaly likelihood (the helper NAB's ``numenta`` detector uses).

    Reports 0.5 for the first ``learningPeriod + estimationSamples`` records; afterwards the
    normal distribution of averaged raw scores is re-fitted on the last `historicWindowSize`
    records whenever ``iteration % reestimationPeriod == 0`` (skipping the records still in the
    learning period), and each record gets 1 - its filtered tail probability.
    """

    def __init__(
        self,
        claLearningPeriod: int | None = None,
        learningPeriod: int = 288,
        estimationSamples: int = 100,
        historicWindowSize: int = 8640,
        reestimationPeriod: int = 100,
    ) -> None:
        if claLearningPeriod is not None:
            warnings.warn(
                "claLearningPeriod is deprecated, use learningPeriod instead",
                DeprecationWarning,
                stacklevel=2,
            )
            learningPeriod = claLearningPeriod
        for name, number, minimum in (
            ("learningPeriod", learningPeriod, 0),
            ("estimationSamples", estimationSamples, 0),
            ("historicWindowSize", historicWindowSize, 1),
            ("reestimationPeriod", reestimationPeriod, 1),
        ):
            whole = is_real(number) and float(number).is_integer()
            if not whole or number < minimum:
                raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {number!r}")
        if historicWindowSize < estimationSamples:
            raise InvalidInputError(
                f"estimationSamples ({estimationSamples}) exceeds historicWindowSize "
                f"({historicWindowSize})"
            )
        self._iteration = 0
        self._historicalScores: collections.deque[_HistoryRecord] = collections.deque(
            maxlen=int(historicWindowSize)
        )
        self._distribution: dict[str, Any] | None = None
        self._learningPeriod = int(learningPeriod)
        self._probationaryPeriod = int(learningPeriod) + int(estimationSamples)
        self._reestimationPeriod = int(reestimationPeriod)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AnomalyLikelihood)
            and self._iteration == other._iteration
            and [tuple(r[1:]) for r in self._historicalScores]
            == [tuple(r[1:]) for r in other._historicalScores]
            and self._historicalScores.maxlen == other._historicalScores.maxlen
            and self._distribution == other._distribution
            and self._probationaryPeriod == other._probationaryPeriod
            and self._learningPeriod == other._learningPeriod
            and self._reestimationPeriod == other._reestimationPeriod
        )

    # unhashable: compared by value and mutable (typeshed types __hash__ as a method)
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"AnomalyLikelihood(iteration={self._iteration}, "
            f"learningPeriod={self._learningPeriod}, "
            f"probationaryPeriod={self._probationaryPeriod}, "
            f"reestimationPeriod={self._reestimationPeriod}, "
            f"historicWindowSize={self._historicalScores.maxlen}, "
            f"distribution={self._distribution})"
        )

    @staticmethod
    def computeLogLikelihood(likelihood: float) -> float:
        """Log-scale the likelihood: ln(1.0000000001 - L) / ln(1e-10), in [0, 1]."""
        return math.log(1.0000000001 - likelihood) / -23.02585084720009

    def _history_size(self) -> int:
        """Records the history keeps (``historicWindowSize``: the deque always has a maxlen)."""
        size = self._historicalScores.maxlen
        assert size is not None
        return size

    @staticmethod
    def _calcSkipRecords(numIngested: int, windowSize: int, learningPeriod: int) -> int:
        """Records at the start of the history window that still belong to the learning
        period (the learning period minus what has already slid out of the window)."""
        numShiftedOut = max(0, numIngested - windowSize)
        return min(numIngested, max(0, learningPeriod - numShiftedOut))

    def anomalyProbability(self, value: Any, anomalyScore: float, timestamp: Any = None) -> float:
        """Record one (value, raw anomaly score) and return its anomaly likelihood in [0, 1]."""
        if timestamp is None:
            timestamp = self._iteration
        dataPoint = (timestamp, value, float(anomalyScore))
        if self._iteration < self._probationaryPeriod:
            likelihood = 0.5
        else:
            if self._distribution is None or self._iteration % self._reestimationPeriod == 0:
                skip = self._calcSkipRecords(
                    numIngested=self._iteration,
                    windowSize=self._history_size(),
                    learningPeriod=self._learningPeriod,
                )
                _, _, self._distribution = _estimate_params(
                    self._historicalScores, 10, skip, 0, all_likelihoods=False
                )
            likelihoods, _, self._distribution = updateAnomalyLikelihoods(
                [dataPoint], self._distribution
            )
            likelihood = 1.0 - float(likelihoods[0])
        self._historicalScores.append(dataPoint)
        self._iteration += 1
        return likelihood

    def state_dict(self) -> dict[str, _Floats | int | float | str]:
        """The complete state: arrays of the history values/scores plus scalars and the
        distribution as a JSON string. Timestamps are not kept (they never affect a result).
        Values must be numbers (they are stored as float64)."""
        try:
            values = np.array([r[1] for r in self._historicalScores], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                "AnomalyLikelihood.state_dict needs numeric metric values"
            ) from exc
        scores = np.array([r[2] for r in self._historicalScores], dtype=np.float64)
        return {
            "iteration": self._iteration,
            "learningPeriod": self._learningPeriod,
            "probationaryPeriod": self._probationaryPeriod,
            "reestimationPeriod": self._reestimationPeriod,
            "historicWindowSize": self._history_size(),
            "historicalValues": values,
            "historicalScores": scores,
            "distribution": json.dumps(self._distribution),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> AnomalyLikelihood:
        """Rebuild an instance from :meth:`state_dict` output; it continues identically."""
        required = (
            "iteration", "learningPeriod", "probationaryPeriod", "reestimationPeriod",
            "historicWindowSize", "historicalValues", "historicalScores", "distribution",
        )  # fmt: skip
        missing = [key for key in required if key not in state]
        if missing:
            raise InvalidInputError(f"AnomalyLikelihood state is missing {missing}")
        values = np.asarray(state["historicalValues"], dtype=np.float64)
        scores = np.asarray(state["historicalScores"], dtype=np.float64)
        if values.shape != scores.shape or values.ndim != 1:
            raise InvalidInputError(
                "AnomalyLikelihood state: historicalValues and historicalScores must be 1-D "
                "arrays of the same length"
            )
        obj = cls.__new__(cls)
        obj._iteration = int(state["iteration"])
        obj._learningPeriod = int(state["learningPeriod"])
        obj._probationaryPeriod = int(state["probationaryPeriod"])
        obj._reestimationPeriod = int(state["reestimationPeriod"])
        obj._historicalScores = collections.deque(
            ((i, float(v), float(s)) for i, (v, s) in enumerate(zip(values, scores, strict=True))),
            maxlen=int(state["historicWindowSize"]),
        )
        distribution = state["distribution"]
        if isinstance(distribution, np.ndarray):  # a string loaded back from an npz archive
            distribution = distribution.item()
        if isinstance(distribution, bytes):
            distribution = distribution.decode()
        if not isinstance(distribution, str):
            raise InvalidInputError("AnomalyLikelihood state: distribution must be a JSON string")
        obj._distribution = json.loads(distribution)
        return obj
