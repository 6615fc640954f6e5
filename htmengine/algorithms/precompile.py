"""Compile (or load from numba's on-disk cache) every kernel the HTM model uses, once, so that
services and tests start with warm code: ``python -m htmengine.algorithms.precompile``.

`make run` and `make test` call it after installing; with a warm cache it takes about a second.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
from htmengine.algorithms.model import HtmAnomalyModel


def precompile(records: int = 20) -> float:
    """Run a throw-away model (with save/load and the likelihood) for `records` records;
    returns the seconds it took."""
    started = time.perf_counter()
    model = HtmAnomalyModel.from_range(0.0, 100.0)
    likelihood = AnomalyLikelihood(learningPeriod=5, estimationSamples=5, reestimationPeriod=5)
    timestamp = datetime(2000, 1, 1)
    for index in range(records):
        value = float((index * 7) % 100)
        score = model.run(timestamp, value)
        likelihood.anomalyProbability(value, score, timestamp)
        timestamp += timedelta(minutes=5)
        if index == records // 2:
            model = HtmAnomalyModel.from_bytes(model.to_bytes())
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"HTM model code compiled and cached in {precompile():.1f} s")
