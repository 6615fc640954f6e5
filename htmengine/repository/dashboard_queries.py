"""Read queries of the web dashboard: the last day of every metric in a few dozen buckets (for
the overview's sparklines) in one statement. Every function takes a `sqlalchemy.Connection`
and only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from htmengine.repository import schema

__all__ = ["SparkPoint", "get_sparklines"]

_metric = schema.metric
_data = schema.metric_data


@dataclass(frozen=True)
class SparkPoint:
    """One bucket of a sparkline: its last timestamp, mean value and highest likelihood."""

    timestamp: datetime
    value: float
    max_likelihood: float | None


def get_sparklines(conn: sa.Connection, seconds: int = 86400, buckets: int = 48,
                   max_rows: int = 1500) -> dict[str, list[SparkPoint]]:
    """{uid: points in time order} of every metric with data: the rows of its last `seconds`
    before its last sample (at most its last `max_rows` rows) averaged into `buckets`
    equal spans."""
    last = _data.alias("spark_last")
    row = _data.alias("spark_row")
    span = max(1, -(-seconds // buckets))
    age = sa.func.timestampdiff(sa.text("SECOND"), row.c.timestamp, last.c.timestamp)
    bucket = sa.func.floor(age / span).label("bucket")
    select = (
        sa.select(row.c.uid, bucket, sa.func.max(row.c.timestamp).label("ts"),
                  sa.func.avg(row.c.metric_value).label("value"),
                  sa.func.max(row.c.anomaly_score).label("likelihood"))
        .select_from(
            _metric.join(last, sa.and_(last.c.uid == _metric.c.uid,
                                       last.c.rowid == _metric.c.last_rowid))
            .join(row, row.c.uid == _metric.c.uid))
        .where(row.c.rowid > _metric.c.last_rowid - max_rows)
        .where(age < seconds)
        .group_by(row.c.uid, bucket)
        .order_by(row.c.uid, bucket.desc()))
    lines: dict[str, list[SparkPoint]] = {}
    for result in conn.execute(select):
        lines.setdefault(result.uid, []).append(SparkPoint(
            result.ts, float(result.value),
            None if result.likelihood is None else float(result.likelihood)))
    return lines
