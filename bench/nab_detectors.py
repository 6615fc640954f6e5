"""Detectors for the NAB run in bench/nab.py: our HTM model (as NAB's ``numenta`` detector)
and two baselines (``null`` and ``windowedGaussian``, as NAB's detectors of those names).

A detector is built for one whole file (NAB lets detectors see the file's min/max and length)
and then called once per row with ``handle(timestamp, value) -> (anomaly_score, raw_score)``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Sequence

import numpy as np

PROBATION_PERCENT = 0.15
# A value beyond the range seen so far by more than this fraction of that range is flagged
# as a spatial anomaly whatever the likelihood says (NAB's numenta detector).
SPATIAL_TOLERANCE = 0.05


def probationary_period(num_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """NAB's probationary period: min(floor(0.15 N), 0.15 * 5000) rows."""
    return int(min(math.floor(probation_percent * num_rows), probation_percent * 5000))


class NullDetector:
    """Constant 0.5 for every row: the baseline that anchors NAB's normalization at 0."""

    name = "null"

    def __init__(self, values: Sequence[float]) -> None:
        self.num_rows = len(values)

    def handle(self, timestamp: datetime.datetime, value: float) -> tuple[float, float]:
        """Return (0.5, 0.5)."""
        return 0.5, 0.5


def gaussian_tail(x: float, mean: float, std: float) -> float:
    """Probability of a normal sample further from the mean than x (on x's side)."""
    if x < mean:
        x = 2 * mean - x
    return 0.5 * math.erfc((x - mean) / std / math.sqrt(2))


class WindowedGaussianDetector:
    """Score = 1 - Gaussian tail probability of the value under the mean/std of a window.

    The window fills up to 6400 values, then slides forward 100 values at a time; the
    statistics are refreshed whenever the window changes (std 0 is replaced by 1e-6).
    """

    name = "windowedGaussian"
    window_size = 6400
    step_size = 100

    def __init__(self, values: Sequence[float]) -> None:
        self.window: list[float] = []
        self.pending: list[float] = []
        self.mean = 0.0
        self.std = 1.0

    def _refresh(self) -> None:
        """Recompute mean and population std of the window."""
        self.mean = float(np.mean(self.window))
        self.std = float(np.std(self.window)) or 0.000001

    def handle(self, timestamp: datetime.datetime, value: float) -> tuple[float, float]:
        """Score the value against the window, then add it to the window."""
        score = 1.0 - gaussian_tail(value, self.mean, self.std) if self.window else 0.0
        if len(self.window) < self.window_size:
            self.window.append(value)
            self._refresh()
        else:
            self.pending.append(value)
            if len(self.pending) == self.step_size:
                self.window = self.window[self.step_size :] + self.pending
                self.pending = []
                self._refresh()
        return score, score


class SpatialAnomalyTracker:
    """NAB's spatial anomaly rule: a value beyond the range seen so far by more than 5% of
    that range (once the range is not a single value) is anomalous."""

    def __init__(self) -> None:
        self.seen_min: float | None = None
        self.seen_max: float | None = None

    def check(self, value: float) -> bool:
        """Test the value against the range seen so far, then widen the range with it."""
        anomalous = False
        if self.seen_min is not None and self.seen_max is not None:
            if self.seen_min != self.seen_max:
                tolerance = (self.seen_max - self.seen_min) * SPATIAL_TOLERANCE
                anomalous = (value > self.seen_max + tolerance
                             or value < self.seen_min - tolerance)  # fmt: skip
        if self.seen_max is None or value > self.seen_max:
            self.seen_max = value
        if self.seen_min is None or value < self.seen_min:
            self.seen_min = value
        return anomalous


class HtmDetector:
    """Our HTM model + anomaly likelihood, exactly as NAB's ``numenta`` detector uses NuPIC.

    The model's value range is the file's min/max widened by 20% of the range on each side;
    the likelihood learns for floor(P/2) rows and estimates on the rest of the probationary
    period P; the final score is 1.0 for a spatial anomaly (value beyond the range seen so far
    by > 5% of it), otherwise the log-scaled likelihood.
    """

    name = "htmengine"

    def __init__(self, values: Sequence[float]) -> None:
        from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
        from htmengine.algorithms.model import HtmAnomalyModel

        low, high = float(np.min(values)), float(np.max(values))
        padding = abs(high - low) * 0.2
        self.model = HtmAnomalyModel.from_range(low - padding, high + padding, minResolution=0.001)
        period = probationary_period(len(values))
        learning = int(math.floor(period / 2.0))
        self.likelihood = AnomalyLikelihood(
            learningPeriod=learning, estimationSamples=period - learning, reestimationPeriod=100
        )
        self.spatial = SpatialAnomalyTracker()

    def handle(self, timestamp: datetime.datetime, value: float) -> tuple[float, float]:
        """Run the model on one row; return (final score, raw anomaly score)."""
        raw = float(self.model.run(timestamp, value))
        spatial = self.spatial.check(value)
        probability = self.likelihood.anomalyProbability(value, raw, timestamp)
        score = self.likelihood.computeLogLikelihood(probability)
        return (1.0 if spatial else score), raw


DETECTORS: dict[str, Callable[[Sequence[float]], object]] = {
    HtmDetector.name: HtmDetector,
    NullDetector.name: NullDetector,
    WindowedGaussianDetector.name: WindowedGaussianDetector,
}
