"""Anomaly likelihood of model results, the htmengine variant (used by the anomaly service).

Per metric, the likelihood state ``{"last_rowid_for_stats": int, "params": {...}}`` lives in
``metric.model_params["anomalyLikelihoodParams"]`` so a restarted service continues where it
stopped. Rules:

* ``anomaly_score`` is 0 until ``statistics_min_sample_size`` (100) rows have raw scores;
  then the distribution is fitted on up to ``statistics_sample_size`` (8640) of the latest
  scored rows, skipping the first 288 (the model is still learning on its first day);
* every row after that is scored with ``updateAnomalyLikelihoods`` and stored as
  1 - tail probability;
* the fit is refreshed every max(``statistics_refresh_rate`` (24), 10% of the batch size) rows,
  and early when a score exceeds 0.99 more than 3 rows after the last refresh;
* when the refresh point of a batch lies before its first row (a smaller batch after a larger
  one), the fit is refreshed on the stored rows before the batch is scored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from htmengine.algorithms.anomaly_likelihood import (
    estimateAnomalyLikelihoods,
    updateAnomalyLikelihoods,
)
from htmengine.exceptions import InvalidInputError
from htmengine.repository import queries

NUM_SKIP_RECORDS = 288           # one day of 5-minute records
EARLY_REFRESH_SCORE = 0.99
EARLY_REFRESH_MIN_ROWS = 3

# display_value bands (integer column): the band floor plus the log-scaled score
GREEN_BAR_FLOOR = 1000
YELLOW_BAR_FLOOR = GREEN_BAR_FLOOR * 1000
RED_BAR_FLOOR = YELLOW_BAR_FLOOR * 1000
_LOG_1E_MINUS_10 = math.log(1.0 - 0.9999999999)


@dataclass
class ScoredRow:
    """A metric_data row being scored (mutable; column names as in the table)."""

    rowid: int
    timestamp: datetime
    metric_value: float
    raw_anomaly_score: float
    anomaly_score: float = 0.0
    display_value: int = 0
    multi_step_best_predictions: dict[str, Any] | None = None

    def record(self) -> tuple[datetime, float, float]:
        """(timestamp, value, raw score) as the likelihood functions take it."""
        return (self.timestamp, self.metric_value, self.raw_anomaly_score)


def logScale(score: float) -> float:
    """log(1.0000000001 - s) / log(1e-10): 0 for s = 0, about 1 as s approaches 1."""
    if score > 0.99999:
        return 1.0
    return math.log(1.0000000001 - score) / _LOG_1E_MINUS_10


def rescaleForDisplay(score: float) -> int:
    """display_value of an anomaly score: 0 for 0, else the log-scaled score plus the floor
    of its band (red >= 0.5, yellow >= 0.4, else green)."""
    if score == 0:
        return 0
    scaled = logScale(abs(score))
    if scaled >= 0.5:
        scaled += RED_BAR_FLOOR
    elif scaled >= 0.4:
        scaled += YELLOW_BAR_FLOOR
    else:
        scaled += GREEN_BAR_FLOOR
    return int(scaled)


class AnomalyLikelihoodHelper:
    """Computes anomaly scores of a batch of rows and the new likelihood state."""

    def __init__(self, minSampleSize: int = 100, refreshRate: int = 24,
                 sampleSize: int = 8640, skipRecords: int = NUM_SKIP_RECORDS) -> None:
        if not 0 < minSampleSize <= sampleSize:
            raise InvalidInputError(f"need 0 < statistics_min_sample_size ({minSampleSize}) <= "
                             f"statistics_sample_size ({sampleSize})")
        if refreshRate < 1:
            raise InvalidInputError(f"statistics_refresh_rate must be >= 1, got {refreshRate}")
        self.minSampleSize = minSampleSize
        self.refreshRate = refreshRate
        self.sampleSize = sampleSize
        self.skipRecords = skipRecords

    @classmethod
    def fromConfig(cls, config: Any) -> AnomalyLikelihoodHelper:
        """From application.conf [anomaly_likelihood]."""
        section = "anomaly_likelihood"
        return cls(minSampleSize=config.getint(section, "statistics_min_sample_size"),
                   refreshRate=config.getint(section, "statistics_refresh_rate"),
                   sampleSize=config.getint(section, "statistics_sample_size"))

    def refreshInterval(self, batchSize: int) -> int:
        """Rows between refreshes: larger for big (catch-up) batches."""
        return int(max(self.refreshRate, batchSize * 0.1))

    def _estimate(self, window: list[tuple[int, tuple[datetime, float, float]]]) -> dict[str, Any]:
        samples = [record for _, record in window[-self.sampleSize:]]
        _, _, params = estimateAnomalyLikelihoods(samples, skipRecords=self.skipRecords)
        return {"last_rowid_for_stats": window[-1][0], "params": params}

    def _loadScoredTail(self, conn: sa.Connection, metricId: str) -> list[tuple[int, tuple[datetime, float, float]]]:
        rows = queries.getMetricDataWithRawAnomalyScoresTail(conn, metricId,
                                                             limit=self.sampleSize)
        rows.sort(key=lambda r: r.rowid)
        return [(r.rowid, (r.timestamp, r.metric_value, r.raw_anomaly_score)) for r in rows]

    def updateModelAnomalyScores(self, conn: sa.Connection, metricId: str,
                                 state: dict[str, Any] | None,
                                 rows: Sequence[ScoredRow]) -> dict[str, Any] | None:
        """Set `anomaly_score` and `display_value` of `rows` (new results in rowid order, not
        yet stored; rows already scored in the database must not be among them) and return
        the new likelihood state (None while fewer than the minimum rows have raw scores).
        Reads earlier scored rows of the metric through `conn`."""
        for row in rows:
            row.anomaly_score = 0.0
        if not rows:
            return state
        window: list[tuple[int, tuple[datetime, float, float]]] | None = None   # (rowid, record), loaded lazily
        windowEnd = 0                                   # rows[:windowEnd] are in window
        start = 0
        if not state:
            numProcessed = queries.getProcessedMetricDataCount(conn, metricId)
            needed = max(0, self.minSampleSize - numProcessed)
            if needed > len(rows):
                return None
            window = self._loadScoredTail(conn, metricId)
            window.extend((r.rowid, r.record()) for r in rows[:needed])
            windowEnd = start = needed
            state = self._estimate(window)
        interval = self.refreshInterval(len(rows))
        if start < len(rows) and state["last_rowid_for_stats"] + interval < rows[start].rowid:
            # The refresh point lies before this batch (a smaller batch after a larger one,
            # or a gap): refit on the stored rows before scoring, as the original does.
            if window is None:
                window = self._loadScoredTail(conn, metricId)
            if len(window) >= self.minSampleSize:
                state = self._estimate(window)
        for index in range(start, len(rows)):
            row = rows[index]
            (tailProbability,), _, params = updateAnomalyLikelihoods([row.record()],
                                                                      state["params"])
            state = {"last_rowid_for_stats": state["last_rowid_for_stats"], "params": params}
            row.anomaly_score = float(1.0 - tailProbability)
            lastRefresh = state["last_rowid_for_stats"]
            if (row.rowid >= lastRefresh + interval
                    or (row.anomaly_score > EARLY_REFRESH_SCORE
                        and lastRefresh + EARLY_REFRESH_MIN_ROWS < row.rowid)):
                if window is None:
                    window = self._loadScoredTail(conn, metricId)
                window.extend((r.rowid, r.record()) for r in rows[windowEnd:index + 1])
                windowEnd = index + 1
                del window[:-self.sampleSize]
                state = self._estimate(window)
        for row in rows:
            row.display_value = rescaleForDisplay(row.anomaly_score)
        return state
