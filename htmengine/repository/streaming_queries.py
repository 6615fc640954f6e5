"""Queries of the metric storer and streamer and of the anomaly service: the uids of a
batch's metric names, the rows a model has not been sent yet, the metrics to resume streaming
to, and the scores a model's results write back."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from htmengine.repository import schema
from htmengine.repository.transactions import AnyRow

_data = schema.metric_data
_metric = schema.metric


class RowScores(Protocol):
    """What a model's result sets on one metric_data row (the anomaly service's ScoredRow)."""

    rowid: int
    raw_anomaly_score: float
    anomaly_score: float
    display_value: int
    multi_step_best_predictions: dict[str, Any] | None


def get_data_timestamp(conn: sa.Connection, metricId: str, rowid: int) -> datetime | None:
    """The timestamp of the metric's data row `rowid` (None when there is no such row)."""
    row = conn.execute(sa.select(_data.c.timestamp)
                       .where(_data.c.uid == metricId)
                       .where(_data.c.rowid == rowid)).first()
    return None if row is None else row.timestamp


def get_data_rows_after(conn: sa.Connection, metricId: str, afterRowid: int,
                        lastRowid: int) -> list[AnyRow]:
    """The metric's rows with afterRowid < rowid <= lastRowid as (rowid, timestamp,
    metric_value), in rowid order."""
    result = conn.execute(sa.select(_data.c.rowid, _data.c.timestamp, _data.c.metric_value)
                          .where(_data.c.uid == metricId)
                          .where(_data.c.rowid > afterRowid)
                          .where(_data.c.rowid <= lastRowid)
                          .order_by(_data.c.rowid))
    return list(result.all())  # noqa: C416


def get_custom_metric_uids(conn: sa.Connection, names: Iterable[str]) -> dict[str, str]:
    """name -> uid of the custom metrics among `names` (one statement; names that are not
    custom metrics are left out)."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(_metric.c.name, _metric.c.uid)
                        .where(_metric.c.datasource == "custom")
                        .where(_metric.c.name.in_(wanted)))
    return {row.name: row.uid for row in rows}


def lock_free_metrics(conn: sa.Connection, metricIds: Iterable[str]) -> dict[str, AnyRow]:
    """Lock the rows of those of `metricIds` that no other transaction holds (SELECT ... FOR
    UPDATE SKIP LOCKED, in uid order) until the caller's transaction ends; returns them by
    uid, with their status, last_rowid and datasource (a missing metric is not returned
    either)."""
    return _lock_metric_rows(conn, metricIds, _metric.c.datasource, skip_locked=True)


def get_data_timestamps(conn: sa.Connection, rowids: dict[str, int]) -> dict[str, datetime]:
    """The timestamps of the data rows (uid, rowid) of `rowids` (one statement; a missing
    row is left out)."""
    if not rowids:
        return {}
    pairs = sa.tuple_(_data.c.uid, _data.c.rowid).in_(sorted(rowids.items()))
    return {row.uid: row.timestamp
            for row in conn.execute(sa.select(_data.c.uid, _data.c.timestamp).where(pairs))}


def lock_stream_positions(conn: sa.Connection, metricIds: Iterable[str]) -> dict[str, AnyRow]:
    """Lock the rows of `metricIds` (SELECT ... FOR UPDATE, in uid order, waiting for other
    transactions) until the caller's transaction ends; returns them by uid with their
    status, last_rowid and model_params (a missing metric is not returned)."""
    return _lock_metric_rows(conn, metricIds, _metric.c.model_params, skip_locked=False)


def _lock_metric_rows(conn: sa.Connection, metricIds: Iterable[str], column: Any,
                      skip_locked: bool) -> dict[str, AnyRow]:
    """SELECT uid, status, last_rowid and `column` of `metricIds` FOR UPDATE (SKIP LOCKED
    if `skip_locked`), in uid order; the rows by uid."""
    wanted = sorted(set(metricIds))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(_metric.c.uid, _metric.c.status, _metric.c.last_rowid, column)
                        .where(_metric.c.uid.in_(wanted))
                        .order_by(_metric.c.uid).with_for_update(skip_locked=skip_locked))
    return {row.uid: row for row in rows}


def set_model_params_many(conn: sa.Connection, modelParams: dict[str, str]) -> None:
    """Set the ``model_params`` (JSON text) of several metrics in one UPDATE."""
    if modelParams:
        conn.execute(_metric.update().where(_metric.c.uid.in_(sorted(modelParams)))
                     .values(model_params=sa.case(modelParams, value=_metric.c.uid)))


def get_metric_ids_with_unsent_rows(conn: sa.Connection, statuses: Iterable[int],
                                    mark_key: str) -> list[str]:
    """The uids of the metrics whose status is one of `statuses` and whose last rowid is past
    the streaming mark kept under `mark_key` in their ``model_params`` JSON (a missing or
    unreadable mark counts as 0): one statement, no lock (the caller re-checks each under
    its row lock)."""
    wanted = [int(status) for status in statuses]
    mark = sa.func.coalesce(sa.cast(sa.func.json_value(_metric.c.model_params,
                                                       f"$.{mark_key}"), sa.BigInteger), 0)
    return [row.uid for row in conn.execute(
        sa.select(_metric.c.uid).where(_metric.c.status.in_(wanted),
                                       sa.func.coalesce(_metric.c.last_rowid, 0) > mark))]


def write_unscored_results(conn: sa.Connection, metricId: str,
                           scores: Sequence[RowScores]) -> None:
    """Set the scores of the metric's rows that have no raw anomaly score yet (a result
    delivered twice is scored once): one UPDATE per 500 rows, joining the rows to a derived
    table of the new values (not one round trip per row; the numbers are cast to DOUBLE, as
    the columns are, so each is stored exactly)."""
    for start in range(0, len(scores), _UNSCORED_CHUNK):
        _write_unscored_chunk(conn, metricId, scores[start:start + _UNSCORED_CHUNK])


_UNSCORED_CHUNK = 500  # rows per UPDATE: a long backlog batch stays a modest statement


def _write_unscored_chunk(conn: sa.Connection, metricId: str,
                          scores: Sequence[RowScores]) -> None:
    selects = " UNION ALL ".join(
        f"SELECT :r{i} AS rowid, CAST(:a{i} AS DOUBLE) AS raw, CAST(:s{i} AS DOUBLE) AS score, "
        f":d{i} AS display, :p{i} AS predictions" for i in range(len(scores)))
    params: dict[str, Any] = {"uid": metricId}
    for i, row in enumerate(scores):
        params.update({
            f"r{i}": row.rowid, f"a{i}": row.raw_anomaly_score, f"s{i}": row.anomaly_score,
            f"d{i}": row.display_value,
            f"p{i}": (json.dumps(row.multi_step_best_predictions)
                      if row.multi_step_best_predictions is not None else None)})
    conn.execute(sa.text(
        f"UPDATE {_data.name} AS d JOIN ({selects}) AS v "
        "ON d.uid = :uid AND d.rowid = v.rowid "
        "SET d.anomaly_score = v.score, d.display_value = v.display, "
        "d.multi_step_best_predictions = v.predictions, d.raw_anomaly_score = v.raw "
        "WHERE d.raw_anomaly_score IS NULL"), params)
