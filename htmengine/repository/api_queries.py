"""Read queries of the engine's HTTP API and Prometheus exposition: metric summaries (rows
stored and scored, last value and likelihood), pages of data, anomalies across metrics, models
by status. Every function takes a `sqlalchemy.Connection` and only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from htmengine.repository import schema
from htmengine.repository.transactions import AnyRow

__all__ = [
    "AnomalyRow", "DataRow", "MetricSummary", "count_metrics", "get_anomalies",
    "get_data_page", "get_last_values", "get_metric_summaries", "get_metric_summary_by_name",
    "get_metrics_by_status", "get_scored_counts",
]

_metric = schema.metric
_data = schema.metric_data


@dataclass(frozen=True)
class MetricSummary:
    """One metric as the API lists it."""

    uid: str
    name: str
    datasource: str | None
    status: int
    message: str | None
    rows_stored: int
    rows_scored: int
    last_timestamp: datetime | None
    last_value: float | None
    last_likelihood: float | None
    model_params: str | None
    parameters: str | None


@dataclass(frozen=True)
class DataRow:
    """One metric_data row with its scores."""

    rowid: int
    timestamp: datetime
    value: float
    raw_anomaly_score: float | None
    anomaly_likelihood: float | None
    display_value: int | None


@dataclass(frozen=True)
class AnomalyRow:
    """A row over a likelihood threshold, with its metric's name."""

    uid: str
    name: str
    rowid: int
    timestamp: datetime
    value: float
    raw_anomaly_score: float | None
    anomaly_likelihood: float


def _summary_select() -> sa.Select[Any]:
    last = _data.alias("last_row")
    scored = _data.alias("scored_row")
    counted = _data.alias("counted_row")
    last_value = (sa.select(last.c.metric_value)
                  .where(last.c.uid == _metric.c.uid)
                  .where(last.c.rowid == _metric.c.last_rowid)
                  .scalar_subquery())
    last_likelihood = (sa.select(scored.c.anomaly_score)
                       .where(scored.c.uid == _metric.c.uid)
                       .where(scored.c.anomaly_score.is_not(None))
                       .order_by(scored.c.rowid.desc()).limit(1)
                       .scalar_subquery())
    rows_scored = (sa.select(sa.func.count())
                   .where(counted.c.uid == _metric.c.uid)
                   .where(counted.c.raw_anomaly_score.is_not(None))
                   .scalar_subquery())
    return sa.select(
        _metric.c.uid, _metric.c.name, _metric.c.datasource, _metric.c.status,
        _metric.c.message, _metric.c.last_rowid, _metric.c.model_params,
        _metric.c.parameters,
        last_value.label("last_value"), last_likelihood.label("last_likelihood"),
        rows_scored.label("rows_scored"))


def _last_timestamp_select() -> sa.ScalarSelect[Any]:
    last = _data.alias("last_ts_row")
    return (sa.select(last.c.timestamp).where(last.c.uid == _metric.c.uid)
            .where(last.c.rowid == _metric.c.last_rowid).scalar_subquery())


def _to_summary(row: AnyRow) -> MetricSummary:
    return MetricSummary(
        uid=row.uid, name=row.name or "", datasource=row.datasource, status=int(row.status or 0),
        message=row.message, rows_stored=int(row.last_rowid or 0),
        rows_scored=int(row.rows_scored or 0), last_timestamp=row.last_data_timestamp,
        last_value=row.last_value, last_likelihood=row.last_likelihood,
        model_params=row.model_params, parameters=row.parameters)


def _with_last_timestamp(select: sa.Select[Any]) -> sa.Select[Any]:
    return select.add_columns(_last_timestamp_select().label("last_data_timestamp"))


def get_metric_summaries(conn: sa.Connection, status: int | None = None, offset: int = 0,
                         limit: int = 100) -> list[MetricSummary]:
    """Summaries of the metrics ordered by name (then uid), optionally of one status only,
    `limit` of them from `offset`."""
    select = _with_last_timestamp(_summary_select())
    if status is not None:
        select = select.where(_metric.c.status == int(status))
    select = select.order_by(_metric.c.name, _metric.c.uid).offset(offset).limit(limit)
    return [_to_summary(row) for row in conn.execute(select)]


def count_metrics(conn: sa.Connection, status: int | None = None) -> int:
    """Number of metrics (of one status when given)."""
    select = sa.select(sa.func.count()).select_from(_metric)
    if status is not None:
        select = select.where(_metric.c.status == int(status))
    return int(conn.execute(select).scalar_one())


def get_metric_summary_by_name(conn: sa.Connection, name: str) -> MetricSummary | None:
    """The summary of the custom metric `name`, None if there is none."""
    select = (_with_last_timestamp(_summary_select()).where(_metric.c.name == name)
              .where(_metric.c.datasource == "custom"))
    row = conn.execute(select).first()
    return None if row is None else _to_summary(row)


def get_data_page(conn: sa.Connection, uid: str, since: datetime | None = None,
                  until: datetime | None = None, limit: int = 1000,
                  min_likelihood: float | None = None) -> list[DataRow]:
    """Rows of metric `uid` in time order (rowid order among equal times); `since` and
    `until` inclusive; with `min_likelihood`, only rows whose likelihood reaches it."""
    select = (sa.select(_data.c.rowid, _data.c.timestamp, _data.c.metric_value,
                        _data.c.raw_anomaly_score, _data.c.anomaly_score,
                        _data.c.display_value)
              .where(_data.c.uid == uid))
    if since is not None:
        select = select.where(_data.c.timestamp >= since)
    if until is not None:
        select = select.where(_data.c.timestamp <= until)
    if min_likelihood is not None:
        select = select.where(_data.c.anomaly_score >= min_likelihood)
    select = select.order_by(_data.c.timestamp, _data.c.rowid).limit(limit)
    return [DataRow(row.rowid, row.timestamp, row.metric_value, row.raw_anomaly_score,
                    row.anomaly_score, row.display_value) for row in conn.execute(select)]


def get_anomalies(conn: sa.Connection, threshold: float, since: datetime | None = None,
                  limit: int = 1000) -> list[AnomalyRow]:
    """Rows of any metric whose likelihood is at least `threshold` (at or after `since`),
    newest first."""
    select = (sa.select(_data.c.uid, _metric.c.name, _data.c.rowid, _data.c.timestamp,
                        _data.c.metric_value, _data.c.raw_anomaly_score,
                        _data.c.anomaly_score)
              .select_from(_data.join(_metric, _data.c.uid == _metric.c.uid))
              .where(_data.c.anomaly_score >= threshold))
    if since is not None:
        select = select.where(_data.c.timestamp >= since)
    select = select.order_by(_data.c.timestamp.desc(), _data.c.uid, _data.c.rowid).limit(limit)
    return [AnomalyRow(row.uid, row.name or "", row.rowid, row.timestamp, row.metric_value,
                       row.raw_anomaly_score, row.anomaly_score) for row in conn.execute(select)]


def get_last_values(conn: sa.Connection) -> list[tuple[str, float | None, float | None]]:
    """(name, last value, last likelihood) of every metric, ordered by name."""
    select = _summary_select().with_only_columns(
        _metric.c.name, *[column for column in _summary_select().selected_columns
                          if column.key in ("last_value", "last_likelihood")])
    return [(row.name or "", row.last_value, row.last_likelihood)
            for row in conn.execute(select.order_by(_metric.c.name))]


def get_metrics_by_status(conn: sa.Connection) -> dict[int, int]:
    """{status code: number of metrics}."""
    select = sa.select(_metric.c.status, sa.func.count()).group_by(_metric.c.status)
    return {int(status or 0): int(count) for status, count in conn.execute(select)}


def get_scored_counts(conn: sa.Connection) -> tuple[int, int]:
    """(rows stored, rows scored) over every metric."""
    stored = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(_metric.c.last_rowid), 0))
                          ).scalar_one()
    scored = conn.execute(sa.select(sa.func.count()).select_from(_data)
                          .where(_data.c.raw_anomaly_score.is_not(None))).scalar_one()
    return int(stored), int(scored)
