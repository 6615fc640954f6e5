"""Queries of the metric garbage collector: find and delete `metric_data` rows older than a
threshold, a bounded batch at a time (each batch its own short transaction, rows picked through
``timestamp_idx`` and deleted by primary key, so concurrent inserts of new rows never wait on
the purge for long)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from htmengine.exceptions import InvalidInputError
from htmengine.repository import schema
from htmengine.repository.transactions import atomic, writeQuery

__all__ = ["countMetricDataOlderThan", "deleteMetricDataRows", "getMetricDataPurgeThreshold",
           "getOldMetricDataKeys"]

_data = schema.metric_data


def getMetricDataPurgeThreshold(conn: sa.Connection, thresholdDays: int) -> datetime:
    """The database's ``UTC_TIMESTAMP() - INTERVAL thresholdDays DAY`` (metric_data
    timestamps are UTC)."""
    if not isinstance(thresholdDays, int) or isinstance(thresholdDays, bool) or \
            thresholdDays < 0:
        raise InvalidInputError(f"thresholdDays must be a non-negative integer, got {thresholdDays!r}")
    threshold: datetime = conn.execute(sa.select(sa.func.date_sub(
        sa.func.utc_timestamp(), sa.text(f"INTERVAL {thresholdDays:d} DAY")))).scalar_one()
    return threshold


def countMetricDataOlderThan(conn: sa.Connection, threshold: datetime) -> int:
    """Number of metric_data rows with timestamp < `threshold`."""
    return conn.execute(sa.select(sa.func.count()).select_from(_data)
                        .where(_data.c.timestamp < threshold)).scalar_one()


def getOldMetricDataKeys(conn: sa.Connection, threshold: datetime,
                         limit: int) -> list[tuple[str, int]]:
    """Up to `limit` (uid, rowid) keys of rows with timestamp < `threshold`, oldest first."""
    rows = conn.execute(sa.select(_data.c.uid, _data.c.rowid)
                        .where(_data.c.timestamp < threshold)
                        .order_by(_data.c.timestamp.asc()).limit(limit))
    return [(str(row.uid), int(row.rowid)) for row in rows]


@writeQuery
def deleteMetricDataRows(conn: sa.Connection, keys: Sequence[tuple[str, int]],
                         threshold: datetime) -> int:
    """Delete the rows with these (uid, rowid) keys that are still older than `threshold`
    (primary-key lookups, one statement per metric, one transaction); returns how many were
    deleted (fewer if something else deleted some)."""
    byUid: dict[str, list[int]] = defaultdict(list)
    for uid, rowid in keys:
        byUid[uid].append(rowid)
    deleted = 0
    with atomic(conn):
        for uid, rowids in byUid.items():
            deleted += conn.execute(
                _data.delete().where(_data.c.uid == uid).where(_data.c.rowid.in_(rowids))
                .where(_data.c.timestamp < threshold)).rowcount
    return deleted
