"""Query functions on the htmengine database (original names; `conn` first argument).

Every function takes a `sqlalchemy.Connection`. Reads return `Row` objects (attribute access:
`row.uid`) or a `Result`. Writes follow `htmengine.repository.transactions`: on a connection
without an open transaction they run in their own committed transaction and are retried on
transient MySQL errors; on a connection with a transaction open (including one auto-begun by
an earlier read on it) they join it, and the caller commits and retries the whole transaction.

Metric data functions live in `metric_data_queries` and are re-exported here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from htmengine.exceptions import (
    InvalidInputError,
    MetricAlreadyExists,
    MetricStatusChangedError,
    ObjectNotFoundError,
)
from htmengine.repository import schema
from htmengine.repository.instance_queries import (
    getInstances,
    getInstanceStatusHistory,
    getMetricCountForServer,
    listMetricIDsForInstance,
    saveMetricInstanceStatus,
)
from htmengine.repository.metric_data_queries import (
    FAILED_ROW_DISPLAY_VALUE,
    addMetricData,
    getMetricData,
    getMetricDataCount,
    getMetricDataWithRawAnomalyScoresTail,
    getMetricIdsSortedByDisplayValue,
    getMetricStats,
    getProcessedMetricDataCount,
    getUnprocessedModelDataCount,
    incrementMetricRowid,
    markMetricDataRowsFailed,
    updateMetricDataColumns,
)
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

__all__ = [
    "MetricStatus", "OperationLock",
    "addMetric", "getMetric", "getMetricWithSharedLock", "getMetricWithUpdateLock",
    "getCustomMetricByName", "getCustomMetrics", "getAllMetrics", "getAllMetricsForServer",
    "getAllModels", "deleteMetric", "deleteModel", "setMetricStatus", "setMetricCollectorError",
    "setMetricLastTimestamp", "updateMetricColumns", "updateMetricColumnsForRefStatus",
    "lockOperationExclusive",
    # metric_data_queries
    "addMetricData", "getMetricData", "getMetricDataCount", "getProcessedMetricDataCount",
    "getMetricDataWithRawAnomalyScoresTail", "getMetricIdsSortedByDisplayValue",
    "getMetricStats", "getUnprocessedModelDataCount", "incrementMetricRowid",
    "updateMetricDataColumns", "markMetricDataRowsFailed", "FAILED_ROW_DISPLAY_VALUE",
    # instance_queries
    "getInstances", "getInstanceStatusHistory", "getMetricCountForServer",
    "listMetricIDsForInstance", "saveMetricInstanceStatus",
]

ER_DUP_ENTRY = 1062


class OperationLock:
    """Names of rows of the `lock` table used with `lockOperationExclusive`."""

    METRICS = "metrics"  # held while checking and adding metrics, so names stay unique


def lockOperationExclusive(conn: sa.Connection, operationLock: str) -> None:
    """Lock the `lock` row `operationLock` (SELECT ... FOR UPDATE) until the caller's
    transaction ends (on a connection without one, the statement auto-begins a transaction
    that holds the lock until `conn.commit()`/`rollback()`). Usage::

        with engine.begin() as conn:
            lockOperationExclusive(conn, OperationLock.METRICS)
            ...  # check and create atomically

    :raises ObjectNotFoundError: no such row in the `lock` table
    """
    sel = (sa.select(schema.lock.c.name).where(schema.lock.c.name == operationLock)
           .with_for_update())
    if conn.execute(sel).first() is None:
        raise ObjectNotFoundError(f"Operation lock row not found: name={operationLock!r}")


@writeQuery
def addMetric(conn: sa.Connection, uid: str | None = None, datasource: str | None = None,
              name: str | None = None, description: str | None = None,
              server: str | None = None, location: str | None = None,
              parameters: str | None = None, status: int | None = None,
              message: str | None = None, collector_error: str | None = None,
              last_timestamp: datetime | None = None, poll_interval: int | None = None,
              tag_name: str | None = None, model_params: str | None = None,
              last_rowid: int = 0) -> AnyRow:
    """Add a metric and return its row. `uid` defaults to a new uuid4 hex; columns left None
    get their server defaults (status UNMONITORED, poll_interval 60).

    A named metric is added under the `metrics` operation lock after checking that no metric
    with the same name and datasource exists.

    :raises MetricAlreadyExists: same name and datasource, or same uid (`.uid` names it)
    """
    uid = uid or uuid.uuid4().hex
    values: dict[str, Any] = {
        "uid": uid, "datasource": datasource, "name": name, "description": description,
        "server": server, "location": location, "parameters": parameters,
        "status": None if status is None else int(status), "message": message,
        "collector_error": collector_error, "last_timestamp": last_timestamp,
        "poll_interval": poll_interval, "tag_name": tag_name, "model_params": model_params,
        "last_rowid": last_rowid,
    }
    values = {key: value for key, value in values.items() if value is not None}
    with atomic(conn):
        if name is not None:
            lockOperationExclusive(conn, OperationLock.METRICS)
            existing = conn.execute(
                sa.select(schema.metric.c.uid)
                .where(schema.metric.c.name == name)
                .where(schema.metric.c.datasource == datasource
                       if datasource is not None else schema.metric.c.datasource.is_(None))
            ).first()
            if existing is not None:
                raise MetricAlreadyExists(
                    f"Metric with name={name!r} and datasource={datasource!r} already exists: "
                    f"uid={existing.uid}", uid=existing.uid)
        try:
            conn.execute(schema.metric.insert().values(**values))
        except sa_exc.IntegrityError as error:
            if mysql_error_code(error) == ER_DUP_ENTRY:
                raise MetricAlreadyExists(f"Metric with uid={uid} already exists",
                                          uid=uid) from error
            raise
        return _getMetricImpl(conn, uid, None, lock=None)


def _getMetricImpl(conn: sa.Connection, metricId: str, fields: Any,
                   lock: str | None) -> AnyRow:
    sel = sa.select(*selectFields(fields, schema.metric)).where(schema.metric.c.uid == metricId)
    if lock == "share":
        sel = sel.with_for_update(read=True)
    elif lock == "update":
        sel = sel.with_for_update()
    row = conn.execute(sel).first()
    if row is None:
        raise ObjectNotFoundError(f"Metric not found for uid={metricId}")
    return row


def getMetric(conn: sa.Connection, metricId: str, fields: Any = None) -> AnyRow:
    """The metric row with uid `metricId` (`fields`: columns to return, default all).

    :raises ObjectNotFoundError: no such metric
    """
    return _getMetricImpl(conn, metricId, fields, lock=None)


def getMetricWithSharedLock(conn: sa.Connection, metricId: str, fields: Any = None) -> AnyRow:
    """Like getMetric, with SELECT ... LOCK IN SHARE MODE (use inside a transaction)."""
    return _getMetricImpl(conn, metricId, fields, lock="share")


def getMetricWithUpdateLock(conn: sa.Connection, metricId: str, fields: Any = None) -> AnyRow:
    """Like getMetric, with SELECT ... FOR UPDATE (use inside a transaction): the row stays
    locked against other writers and lockers until the transaction ends."""
    return _getMetricImpl(conn, metricId, fields, lock="update")


def _getMetrics(conn: sa.Connection, fields: Any = None,
                where: sa.ColumnElement[bool] | None = None) -> AnyResult:
    sel = sa.select(*selectFields(fields, schema.metric))
    if where is not None:
        sel = sel.where(where)
    return conn.execute(sel.order_by(schema.metric.c.uid))


def getCustomMetricByName(conn: sa.Connection, name: str, fields: Any = None) -> AnyRow:
    """The metric with datasource "custom" and name `name`.

    :raises ObjectNotFoundError: no such metric
    """
    where = (schema.metric.c.name == name) & (schema.metric.c.datasource == "custom")
    row = _getMetrics(conn, fields, where).first()
    if row is None:
        raise ObjectNotFoundError(f"Custom metric not found for name={name!r}")
    return row


def getCustomMetrics(conn: sa.Connection, fields: Any = None) -> AnyResult:
    """All metrics with datasource "custom"."""
    return _getMetrics(conn, fields, schema.metric.c.datasource == "custom")


def getAllMetrics(conn: sa.Connection, fields: Any = None) -> AnyResult:
    """All metrics."""
    return _getMetrics(conn, fields)


def getAllMetricsForServer(conn: sa.Connection, server: str,
                           fields: Any = None) -> AnyResult:
    """All metrics whose `server` column is `server`."""
    return _getMetrics(conn, fields, schema.metric.c.server == server)


def getAllModels(conn: sa.Connection, fields: Any = None) -> AnyResult:
    """All metrics with a model, i.e. status other than UNMONITORED."""
    return _getMetrics(conn, fields, schema.metric.c.status != MetricStatus.UNMONITORED)


@writeQuery
def deleteModel(conn: sa.Connection, metricId: str) -> None:
    """Forget the metric's model: status UNMONITORED, parameters/model_params/message cleared,
    and the model columns of its data rows cleared.

    :raises ObjectNotFoundError: no such metric
    """
    with atomic(conn):
        result = conn.execute(
            schema.metric.update().where(schema.metric.c.uid == metricId)
            .values(parameters=None, model_params=None, status=MetricStatus.UNMONITORED,
                    message=None))
        if result.rowcount == 0:
            raise ObjectNotFoundError(f"Metric not found for uid={metricId}")
        conn.execute(
            schema.metric_data.update().where(schema.metric_data.c.uid == metricId)
            .values(anomaly_score=None, raw_anomaly_score=None, display_value=None,
                    multi_step_best_predictions=None))


@writeQuery
def deleteMetric(conn: sa.Connection, metricId: str) -> None:
    """Delete the metric (its data rows go with it by the cascading foreign key).

    :raises ObjectNotFoundError: no such metric
    """
    with atomic(conn):
        deleteModel(conn, metricId)
        result = conn.execute(schema.metric.delete().where(schema.metric.c.uid == metricId))
        if result.rowcount == 0:
            raise ObjectNotFoundError(f"Metric not found for uid={metricId}")


def _updateMetric(conn: sa.Connection, metricId: str, values: dict[str, Any],
                  refStatus: int | None = None) -> AnyResult:
    update = schema.metric.update().where(schema.metric.c.uid == metricId)
    if refStatus is not None:
        update = update.where(schema.metric.c.status == int(refStatus))
    return conn.execute(update.values(**values))


def _raiseNotUpdated(conn: sa.Connection, metricId: str, refStatus: int | None) -> None:
    """Explain why an update of metric `metricId` matched no row."""
    row = conn.execute(sa.select(schema.metric.c.status)
                       .where(schema.metric.c.uid == metricId)).first()
    if row is None or refStatus is None:
        raise ObjectNotFoundError(f"Metric not found for uid={metricId}")
    raise MetricStatusChangedError(
        f"Metric uid={metricId} has status {row.status}, expected refStatus {int(refStatus)}")


@writeQuery
def setMetricStatus(conn: sa.Connection, metricId: str, status: int,
                    message: str | None = None, refStatus: int | None = None) -> None:
    """Set the metric's status and message (None clears the message). With `refStatus`, the
    update happens only if the current status is `refStatus` (checked atomically).

    :raises ObjectNotFoundError: no such metric
    :raises MetricStatusChangedError: the current status is not `refStatus`
    """
    with atomic(conn):
        result = _updateMetric(conn, metricId, {"status": int(status), "message": message},
                               refStatus)
        if result.rowcount == 0:
            _raiseNotUpdated(conn, metricId, refStatus)


@writeQuery
def setMetricCollectorError(conn: sa.Connection, metricId: str, value: str | None) -> None:
    """Set the metric's `collector_error`.

    :raises ObjectNotFoundError: no such metric
    """
    with atomic(conn):
        if _updateMetric(conn, metricId, {"collector_error": value}).rowcount == 0:
            _raiseNotUpdated(conn, metricId, None)


@writeQuery
def setMetricLastTimestamp(conn: sa.Connection, metricId: str, value: datetime) -> None:
    """Set the metric's `last_timestamp` (time of its latest sample).

    :raises ObjectNotFoundError: no such metric
    """
    with atomic(conn):
        if _updateMetric(conn, metricId, {"last_timestamp": value}).rowcount == 0:
            _raiseNotUpdated(conn, metricId, None)


@writeQuery
def updateMetricColumns(conn: sa.Connection, metricId: str,
                        fields: dict[str, Any]) -> AnyResult:
    """Set metric columns from `fields` ({column name: value}).

    :raises ObjectNotFoundError: no such metric
    :raises InvalidInputError: a key of `fields` is not a metric column
    """
    checkColumnNames(schema.metric, fields)
    with atomic(conn):
        result = _updateMetric(conn, metricId, fields)
        if result.rowcount == 0:
            _raiseNotUpdated(conn, metricId, None)
        return result


@writeQuery
def updateMetricColumnsForRefStatus(conn: sa.Connection, metricId: str, refStatus: int,
                                    fields: dict[str, Any]) -> AnyResult:
    """Set metric columns from `fields` only if the metric's status is `refStatus`; returns
    the update result, whose `rowcount` is 0 when nothing matched (as in the original).

    :raises InvalidInputError: a key of `fields` is not a metric column
    """
    checkColumnNames(schema.metric, fields)
    if refStatus is None:
        raise InvalidInputError("refStatus must be a metric status, got None")
    with atomic(conn):
        return _updateMetric(conn, metricId, fields, refStatus)

