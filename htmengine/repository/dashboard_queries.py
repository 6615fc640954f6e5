"""Read queries of the web dashboard: the last day of every metric in a few dozen buckets (for
the overview's sparklines) in one statement, and a metric's rows as columns. Every function
takes a `sqlalchemy.Connection` and only reads.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from htmengine.repository import schema

__all__ = ["SeriesColumns", "SparkPoint", "get_series", "get_sparkline_versions",
           "get_sparklines"]

_metric = schema.metric
_data = schema.metric_data


@dataclass(frozen=True)
class SparkPoint:
    """One bucket of a sparkline: its age (0: the span ending with the newest sample), mean
    value and highest likelihood."""

    age: int
    value: float
    max_likelihood: float | None


def get_sparkline_versions(conn: sa.Connection) -> dict[str, tuple[int, int]]:
    """{uid: (last rowid, rowid of the newest scored row or 0)} of every metric: a sparkline
    is unchanged while this pair is."""
    scored = _data.alias("version_row")
    last_scored = (sa.select(scored.c.rowid).where(scored.c.uid == _metric.c.uid)
                   .where(scored.c.anomaly_score.is_not(None))
                   .order_by(scored.c.rowid.desc()).limit(1).scalar_subquery())
    select = sa.select(_metric.c.uid, _metric.c.last_rowid, last_scored.label("scored"))
    return {row.uid: (int(row.last_rowid or 0), int(row.scored or 0))
            for row in conn.execute(select)}


def get_sparklines(conn: sa.Connection, seconds: int = 86400, buckets: int = 48,
                   max_rows: int = 1500, uids: Collection[str] | None = None
                   ) -> dict[str, list[SparkPoint]]:
    """{uid: points in time order} of every metric with data (of `uids` only, when given):
    the rows of its last `seconds` before its last sample (at most its last `max_rows` rows)
    averaged into `buckets` equal spans; buckets without rows are left out.

    The rows are grouped on one integer, the metric's ordinal times `buckets` plus the
    bucket, rather than on (uid string, bucket): MariaDB's grouping of the ~300,000 rows of
    a thousand metrics is then about a third cheaper; the ordinals are turned back into
    uids by joining the same numbered metrics (one statement, so one snapshot)."""
    numbered = (sa.select(_metric.c.uid, _metric.c.last_rowid,
                          sa.func.row_number().over(order_by=_metric.c.uid).label("n"))
                .where(sa.true() if uids is None else _metric.c.uid.in_(list(uids)))
                .cte("spark_metric"))
    last = _data.alias("spark_last")
    row = _data.alias("spark_row")
    span = max(1, -(-seconds // buckets))
    age = sa.func.timestampdiff(sa.text("SECOND"), row.c.timestamp, last.c.timestamp)
    key = (numbered.c.n * buckets + sa.func.floor(age / span)).label("k")
    grouped = (
        sa.select(key, sa.func.avg(row.c.metric_value).label("value"),
                  sa.func.max(row.c.anomaly_score).label("likelihood"))
        .select_from(
            numbered.join(last, sa.and_(last.c.uid == numbered.c.uid,
                                        last.c.rowid == numbered.c.last_rowid))
            .join(row, sa.and_(row.c.uid == numbered.c.uid,
                               row.c.rowid > numbered.c.last_rowid - max_rows)))
        .where(age < seconds)
        .group_by(key)
        .order_by(sa.null())   # no sort of the groups (MariaDB sorts GROUP BY otherwise)
        .subquery("spark_groups"))
    owner = numbered.alias("spark_owner")
    select = (sa.select(owner.c.uid, grouped.c.k, grouped.c.value, grouped.c.likelihood)
              .select_from(grouped.join(owner, owner.c.n == sa.func.floor(grouped.c.k / buckets))))
    lines: dict[str, list[SparkPoint]] = {}
    for result in conn.execute(select):
        lines.setdefault(result.uid, []).append(SparkPoint(
            int(result.k) % buckets, float(result.value),
            None if result.likelihood is None else float(result.likelihood)))
    for points in lines.values():
        points.sort(key=lambda point: -point.age)
    return lines


@dataclass(frozen=True)
class SeriesColumns:
    """Rows of one metric as columns, in time order; timestamps in epoch seconds (UTC)."""

    timestamps: list[int]
    values: list[float]
    raw_scores: list[float | None]
    likelihoods: list[float | None]


_EPOCH = datetime(1970, 1, 1)


def get_series(conn: sa.Connection, uid: str, since: datetime | None = None,
               until: datetime | None = None, limit: int = 100000) -> SeriesColumns:
    """The first `limit` rows of metric `uid` from `since` to `until` (inclusive), in rowid
    order, which is time order (the storer keeps a metric's samples in time order). The
    database turns the timestamps into epoch seconds: no datetime object per row."""
    epoch = sa.func.timestampdiff(sa.text("SECOND"), sa.literal(_EPOCH, sa.DateTime),
                                  _data.c.timestamp)
    select = (sa.select(epoch, _data.c.metric_value, _data.c.raw_anomaly_score,
                        _data.c.anomaly_score)
              .where(_data.c.uid == uid))
    if since is not None:
        select = select.where(_data.c.timestamp >= since)
    if until is not None:
        select = select.where(_data.c.timestamp <= until)
    rows = conn.execute(select.order_by(_data.c.rowid).limit(limit)).all()
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return SeriesColumns([int(t) for t in columns[0]], list(columns[1]), list(columns[2]),
                         list(columns[3]))
