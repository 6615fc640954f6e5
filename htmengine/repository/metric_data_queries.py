"""Query functions on `metric_data` (original names; `conn` first argument). Re-exported by
`htmengine.repository.queries`; transaction rules in `htmengine.repository.transactions`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from htmengine.exceptions import (
    DuplicateRecordError,
    InvalidInputError,
    MetricStatisticsNotReadyError,
    ObjectNotFoundError,
)
from htmengine.repository import schema
from htmengine.repository.metric_status import MetricStatus
from htmengine.repository.transactions import (
    AnyResult,
    AnyRow,
    atomic,
    checkColumnNames,
    selectFields,
    writeQuery,
)
from nta_utils.db import mysql_error_code

ER_DUP_ENTRY = 1062
FAILED_ROW_DISPLAY_VALUE = -1
"""display_value of a row the model failed on (raw_anomaly_score NULL, anomaly_score 0)"""

_data = schema.metric_data


@writeQuery
def incrementMetricRowid(conn: sa.Connection, metricId: str, amount: int = 1) -> int:
    """Reserve `amount` rowids for the metric: lock its row (SELECT ... FOR UPDATE), add
    `amount` to `metric.last_rowid` and return the new last rowid. The reserved rowids are
    `result - amount + 1 .. result`.

    :raises ObjectNotFoundError: no such metric
    :raises InvalidInputError: amount < 1
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        raise InvalidInputError(f"amount must be a positive integer, got {amount!r}")
    with atomic(conn):
        row = conn.execute(
            sa.select(schema.metric.c.last_rowid)
            .where(schema.metric.c.uid == metricId).with_for_update()).first()
        if row is None:
            raise ObjectNotFoundError(f"Metric not found for uid={metricId}")
        newLastRowid = (row.last_rowid or 0) + amount
        conn.execute(schema.metric.update().where(schema.metric.c.uid == metricId)
                     .values(last_rowid=newLastRowid))
    return newLastRowid


def _checkSample(index: int, sample: Any) -> tuple[float, datetime]:
    try:
        value, timestamp = sample
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"data[{index}] must be a (value, datetime) pair, got {sample!r}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"data[{index}] value must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidInputError(f"data[{index}] value must be finite, got {value!r}")
    if not isinstance(timestamp, datetime):
        raise InvalidInputError(
            f"data[{index}] timestamp must be a datetime, got {timestamp!r}")
    if timestamp.tzinfo is not None:
        timestamp = timestamp.astimezone(UTC).replace(tzinfo=None)
    return value, timestamp


@writeQuery
def addMetricData(conn: sa.Connection, metricId: str,
                  data: Sequence[tuple[float, datetime]]) -> list[dict[str, Any]]:
    """Add samples `data` ((value, datetime) pairs; aware datetimes are stored as naive UTC)
    to the metric, with rowids allocated contiguously after `metric.last_rowid` under the
    metric row lock. Returns the added rows in rowid order as dicts with keys uid, rowid,
    timestamp, metric_value.

    :raises ObjectNotFoundError: no such metric
    :raises InvalidInputError: a sample is malformed (the message names its index)
    :raises DuplicateRecordError: a (uid, rowid) already exists (last_rowid out of step)
    """
    samples = [_checkSample(index, sample) for index, sample in enumerate(data)]
    if not samples:
        return []
    with atomic(conn):
        lastRowid = incrementMetricRowid(conn, metricId, amount=len(samples))
        firstRowid = lastRowid - len(samples) + 1
        rows = [
            {"uid": metricId, "rowid": rowid, "timestamp": timestamp, "metric_value": value}
            for rowid, (value, timestamp) in enumerate(samples, firstRowid)
        ]
        try:
            conn.execute(_data.insert(), rows)
        except sa_exc.IntegrityError as error:
            if mysql_error_code(error) == ER_DUP_ENTRY:
                raise DuplicateRecordError(
                    f"metric_data rows {firstRowid}..{lastRowid} of uid={metricId} "
                    f"already exist") from error
            raise
    return rows


def append_metric_data_many(conn: sa.Connection,
                            data: Mapping[str, tuple[int, Sequence[tuple[float, datetime]]]]
                            ) -> dict[str, list[dict[str, Any]]]:
    """addMetricData for several metrics whose rows the caller's transaction has locked and
    whose `metric.last_rowid` it has read: `data` maps each uid to (its last rowid, its
    samples); every metric's `last_rowid` moves in one UPDATE and all the rows go in one
    multi-row INSERT. Returns each uid's added rows as addMetricData does.

    :raises InvalidInputError: a sample is malformed (the message names its index)
    :raises DuplicateRecordError: a (uid, rowid) already exists (last_rowid out of step)
    """
    added: dict[str, list[dict[str, Any]]] = {}
    for metricId, (lastRowid, samples) in data.items():
        checked = [_checkSample(index, sample) for index, sample in enumerate(samples)]
        if checked:
            added[metricId] = [
                {"uid": metricId, "rowid": rowid, "timestamp": timestamp,
                 "metric_value": value}
                for rowid, (value, timestamp) in enumerate(checked, lastRowid + 1)]
    if not added:
        return added
    with atomic(conn):
        newLast = {metricId: rows[-1]["rowid"] for metricId, rows in added.items()}
        conn.execute(schema.metric.update()
                     .where(schema.metric.c.uid.in_(sorted(newLast)))
                     .values(last_rowid=sa.case(newLast, value=schema.metric.c.uid)))
        try:
            conn.execute(_data.insert(), [row for rows in added.values() for row in rows])
        except sa_exc.IntegrityError as error:
            if mysql_error_code(error) == ER_DUP_ENTRY:
                raise DuplicateRecordError(
                    f"metric_data rows of {len(added)} metrics already exist") from error
            raise
    return added


def getMetricData(conn: sa.Connection, metricId: str | None = None, fields: Any = None,
                  rowid: int | None = None, start: int | None = None, stop: int | None = None,
                  limit: int | None = None, fromTimestamp: datetime | None = None,
                  toTimestamp: datetime | None = None, score: float | None = None,
                  sort: Any = None) -> AnyResult:
    """Metric data rows (`fields`: columns, default all), in rowid order unless `sort` (a
    column expression or a sequence of them, e.g. `metric_data.c.timestamp.desc()`).

    Selection, used alternatively as in the original: `rowid` (one row), else
    `fromTimestamp`/`toTimestamp` (inclusive), else `start`/`stop` rowids (inclusive).
    `score` > 0 keeps rows with anomaly_score >= score; `score` == 0 keeps rows with any
    anomaly_score. `limit` caps the number of rows.
    """
    sel = sa.select(*selectFields(fields, _data))
    if sort is None:
        sel = sel.order_by(_data.c.rowid.asc())
    elif isinstance(sort, list | tuple):
        sel = sel.order_by(*sort)
    else:
        sel = sel.order_by(sort)
    if metricId is not None:
        sel = sel.where(_data.c.uid == metricId)
    if rowid is not None:
        sel = sel.where(_data.c.rowid == rowid)
    elif fromTimestamp is not None or toTimestamp is not None:
        if fromTimestamp is not None:
            sel = sel.where(_data.c.timestamp >= fromTimestamp)
        if toTimestamp is not None:
            sel = sel.where(_data.c.timestamp <= toTimestamp)
    else:
        if start is not None:
            sel = sel.where(_data.c.rowid >= start)
        if stop is not None:
            sel = sel.where(_data.c.rowid <= stop)
    if score is not None:
        if score > 0.0:
            sel = sel.where(_data.c.anomaly_score >= score)
        elif score == 0.0:
            sel = sel.where(_data.c.anomaly_score.is_not(None))
    if limit is not None:
        if not isinstance(limit, int) or limit < 0:
            raise InvalidInputError(f"limit must be a non-negative integer, got {limit!r}")
        sel = sel.limit(limit)
    return conn.execute(sel)


def getMetricDataWithRawAnomalyScoresTail(conn: sa.Connection, metricId: str,
                                          limit: int) -> list[AnyRow]:
    """The latest `limit` rows of the metric that have a raw anomaly score, newest first."""
    sel = (sa.select(_data).where(_data.c.uid == metricId)
           .where(_data.c.raw_anomaly_score.is_not(None))
           .order_by(_data.c.timestamp.desc(), _data.c.rowid.desc()).limit(limit))
    return list(conn.execute(sel).fetchall())


def getMetricDataCount(conn: sa.Connection, metricId: str) -> int:
    """Number of data rows of the metric."""
    sel = sa.select(sa.func.count()).select_from(_data).where(_data.c.uid == metricId)
    return int(conn.execute(sel).scalar_one())


def getProcessedMetricDataCount(conn: sa.Connection, metricId: str) -> int:
    """Number of data rows of the metric that have a raw anomaly score."""
    sel = (sa.select(sa.func.count()).select_from(_data).where(_data.c.uid == metricId)
           .where(_data.c.raw_anomaly_score.is_not(None)))
    return int(conn.execute(sel).scalar_one())


def getUnprocessedModelDataCount(conn: sa.Connection) -> int:
    """Number of data rows without anomaly score across all ACTIVE metrics."""
    sel = (sa.select(sa.func.count(_data.c.rowid))
           .select_from(_data.join(schema.metric, _data.c.uid == schema.metric.c.uid))
           .where(_data.c.anomaly_score.is_(None))
           .where(schema.metric.c.status == MetricStatus.ACTIVE))
    return int(conn.execute(sel).scalar_one())


def _rowKey(metricDataObj: Any) -> tuple[str, int]:
    if isinstance(metricDataObj, Mapping):
        try:
            return metricDataObj["uid"], metricDataObj["rowid"]
        except KeyError:
            pass
    elif hasattr(metricDataObj, "uid") and hasattr(metricDataObj, "rowid"):
        return metricDataObj.uid, metricDataObj.rowid
    raise InvalidInputError(f"metricDataObj must have uid and rowid, got {metricDataObj!r}")


@writeQuery
def updateMetricDataColumns(conn: sa.Connection, metricDataObj: Any,
                            fields: dict[str, Any]) -> None:
    """Set columns `fields` ({column name: value}) of the data row identified by
    `metricDataObj` (a row or mapping with uid and rowid).

    :raises ObjectNotFoundError: no such row
    :raises InvalidInputError: a key of `fields` is not a metric_data column
    """
    checkColumnNames(_data, fields)
    uid, rowid = _rowKey(metricDataObj)
    with atomic(conn):
        result = conn.execute(_data.update().where(_data.c.uid == uid)
                              .where(_data.c.rowid == rowid).values(**fields))
        if result.rowcount == 0:
            raise ObjectNotFoundError(f"metric_data row not found: uid={uid}, rowid={rowid}")


def markMetricDataRowsFailed(conn: sa.Connection, metricId: str, rowids: Sequence[int]) -> int:
    """Mark rows the model failed on (those still without a raw score): anomaly_score 0 and
    display_value FAILED_ROW_DISPLAY_VALUE. Returns how many rows were marked."""
    if not rowids:
        return 0
    result = conn.execute(
        _data.update().where(_data.c.uid == metricId).where(_data.c.rowid.in_(list(rowids)))
        .where(_data.c.raw_anomaly_score.is_(None))
        .values(anomaly_score=0.0, display_value=FAILED_ROW_DISPLAY_VALUE))
    return int(result.rowcount)


def getMetricStats(conn: sa.Connection, metricId: str) -> dict[str, float]:
    """{"min": ..., "max": ...} of the metric's values.

    :raises MetricStatisticsNotReadyError: the metric has no data (or no longer exists)
    """
    sel = (sa.select(sa.func.min(_data.c.metric_value), sa.func.max(_data.c.metric_value))
           .where(_data.c.uid == metricId))
    statMin, statMax = conn.execute(sel).one()
    if statMin is None or statMax is None:
        raise MetricStatisticsNotReadyError(f"No data to compute statistics of uid={metricId}")
    return {"min": statMin, "max": statMax}


def getMetricIdsSortedByDisplayValue(conn: sa.Connection, period: float) -> dict[str, Any]:
    """{metric uid: sum over the window's 24 bars of MAX(display_value)} for the `period`
    hours before the newest sample of any metric."""
    if isinstance(period, bool) or not isinstance(period, numbers.Real) or period <= 0:
        raise InvalidInputError(f"period must be a positive number of hours, got {period!r}")
    sql = sa.text(
        "SELECT uid, SUM(aggregated_display_value) FROM ("
        " SELECT uid, MAX(display_value) AS aggregated_display_value,"
        "  FLOOR(UNIX_TIMESTAMP(timestamp) / (:period * 150)) AS time_block"
        " FROM metric_data"
        " WHERE timestamp > DATE_SUB("
        "  (SELECT timestamp FROM metric_data ORDER BY timestamp DESC LIMIT 1),"
        "  INTERVAL :period HOUR)"
        " GROUP BY uid, time_block) AS inner_select "
        "GROUP BY uid")
    return {row[0]: row[1] for row in conn.execute(sql, {"period": period})}
