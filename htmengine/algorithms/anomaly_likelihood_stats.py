"""Statistics helpers of the anomaly likelihood: moving average, normal fit, tail probability.

These are the building blocks of :mod:`htmengine.algorithms.anomaly_likelihood` (NuPIC's
anomaly likelihood semantics): a moving average of raw anomaly scores, a normal distribution
fitted to the averages (with floors on mean and variance), the very broad "null" distribution
used when nothing can be learned, the two-sided normal tail probability, and the red/yellow
filter that keeps only the first of consecutive very unlikely values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from htmengine.exceptions import InvalidInputError

# Floors applied to a fitted distribution of averaged anomaly scores.
MEAN_FLOOR = 0.03
VARIANCE_FLOOR = 0.0003
# Metric values whose (population) variance is below this are treated as a flat metric.
FLAT_METRIC_VARIANCE = 1.5e-5
# Default thresholds of the likelihood filter (on 1 - tail probability).
RED_THRESHOLD = 0.99999
YELLOW_THRESHOLD = 0.999


def moving_average_step(
    window: list[float], total: float, new_value: float, window_size: int
) -> tuple[float, list[float], float]:
    """Push `new_value` into the sliding `window` (mutated) and return (average, window, total).

    The running `total` is updated by subtracting the value that leaves the window and adding
    the new one (not recomputed), exactly like NuPIC's ``MovingAverage.compute``.
    """
    if len(window) == window_size:
        total -= window.pop(0)
    window.append(new_value)
    total += new_value
    return float(total) / len(window), window, total


def estimateNormal(
    sampleData: npt.ArrayLike, performLowerBoundCheck: bool = True
) -> dict[str, Any]:
    """Fit a normal distribution (mean, population variance, stdev) to `sampleData`.

    With `performLowerBoundCheck` the mean is raised to at least 0.03 and the variance to at
    least 0.0003, so that a very quiet score stream does not turn every blip into an alarm.
    """
    data = np.asarray(sampleData, dtype=float)
    if data.size == 0:
        raise InvalidInputError("estimateNormal: sampleData is empty")
    mean = float(np.mean(data))
    variance = float(np.var(data))
    if performLowerBoundCheck:
        if mean < MEAN_FLOOR:
            mean = MEAN_FLOOR
        if variance < VARIANCE_FLOOR:
            variance = VARIANCE_FLOOR
    stdev = math.sqrt(variance) if variance > 0 else 0.0
    return {"name": "normal", "mean": mean, "variance": variance, "stdev": stdev}


def nullDistribution(verbosity: int = 0) -> dict[str, Any]:
    """Return a very broad normal distribution that makes every score in [0, 1] likely."""
    if verbosity > 0:
        print("Returning nullDistribution")
    return {"name": "normal", "mean": 0.5, "variance": 1e6, "stdev": 1e3}


def tailProbability(x: float, distributionParams: dict[str, Any]) -> float:
    """Probability of a sample further from the mean than `x` on the same side (Q function).

    Above the mean this is P(sample > x); below the mean the value is mirrored around the mean.
    """
    if "mean" not in distributionParams or "stdev" not in distributionParams:
        raise InvalidInputError(
            "tailProbability: distributionParams needs 'mean' and 'stdev', got "
            f"{sorted(distributionParams)}"
        )
    mean = distributionParams["mean"]
    stdev = distributionParams["stdev"]
    if not stdev > 0:
        raise InvalidInputError(f"tailProbability: stdev must be positive, got {stdev!r}")
    if x < mean:
        x = 2 * mean - x
    z = (x - mean) / stdev
    return 0.5 * math.erfc(z / 1.4142)


def _filterLikelihoods(
    likelihoods: Sequence[float] | npt.NDArray[np.float64],
    redThreshold: float = RED_THRESHOLD,
    yellowThreshold: float = YELLOW_THRESHOLD,
) -> list[float]:
    """Keep only sharp increases of likelihood: filter a list of tail probabilities.

    A tail probability in the red zone (<= 1 - redThreshold) is kept only if the previous
    *unfiltered* value was not in the red zone; otherwise it is replaced by 1 - yellowThreshold.
    The first value is never changed.
    """
    red = 1.0 - redThreshold
    yellow = 1.0 - yellowThreshold
    if len(likelihoods) == 0:
        return []
    filtered = [float(likelihoods[0])]
    for previous, value in zip(likelihoods[:-1], likelihoods[1:], strict=True):
        if value <= red and previous <= red:
            filtered.append(yellow)
        else:
            filtered.append(float(value))
    return filtered


def isValidEstimatorParams(p: Any) -> bool:
    """True if `p` looks like the params returned by estimate/updateAnomalyLikelihoods."""
    if not isinstance(p, dict):
        return False
    if "distribution" not in p or "movingAverage" not in p:
        return False
    dist = p["distribution"]
    if not isinstance(dist, dict):
        return False
    return all(key in dist for key in ("mean", "name", "variance", "stdev"))
