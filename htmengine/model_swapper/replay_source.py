"""Where a model runner re-reads the input rows it applied after its last checkpoint.

A resident model is checkpointed only now and then (checkpoint_policy), while its input is
acked as soon as its results are published. After a crash, the model is loaded from its
checkpoint (state as of row ``lastRowId``) and the rows after it are read back from the
durable store of the input, in rowid order, and run again: the model ends up exactly where
the uninterrupted one was. In htmengine that store is ``metric_data`` (the model id is the
metric uid and input rowids are its rowids), read through `MetricDataReplaySource`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from htmengine.repository import engineFactory, queries, schema


@dataclass(frozen=True)
class ReplayRow:
    """One stored input row: `scored` tells whether its result already reached the store."""

    rowID: int
    timestamp: datetime
    value: float
    scored: bool


class ReplaySource(Protocol):
    """Reads a model's stored input rows after a rowid."""

    def rowsAfter(self, modelID: str, rowID: int) -> list[ReplayRow]:
        """Rows of `modelID` with rowid > `rowID`, in rowid order."""
        ...


class MetricDataReplaySource:
    """`ReplaySource` over htmengine's ``metric_data`` table."""

    def __init__(self, engine: sa.Engine | None = None) -> None:
        self._engine = engine

    def rowsAfter(self, modelID: str, rowID: int) -> list[ReplayRow]:
        """Rows of metric `modelID` with rowid > `rowID`, in rowid order."""
        if self._engine is None:
            self._engine = engineFactory()
        md = schema.metric_data
        with self._engine.connect() as conn:
            rows: Any = queries.getMetricData(
                conn, modelID, fields=[md.c.rowid, md.c.timestamp, md.c.metric_value,
                                       md.c.raw_anomaly_score], start=rowID + 1)
            return [ReplayRow(r.rowid, r.timestamp,
                              math.nan if r.metric_value is None else float(r.metric_value),
                              r.raw_anomaly_score is not None) for r in rows]
