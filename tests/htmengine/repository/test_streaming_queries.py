"""htmengine.repository.streaming_queries (and metric_data_queries.append_metric_data_many,
the storer's batched append) against the real, migrated MariaDB database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from htmengine.exceptions import DuplicateRecordError, InvalidInputError
from htmengine.repository import metric_data_queries, queries, streaming_queries
from htmengine.repository.queries import MetricStatus

T0 = datetime(2015, 6, 1, 12, 0, 0)
MARK = "lastStreamedRowid"
STREAMABLE = (MetricStatus.ACTIVE, MetricStatus.CREATE_PENDING)


_made: list[str] = []


@pytest.fixture(autouse=True)
def _delete_made_metrics(sql_engine: sa.Engine) -> Iterator[None]:
    """The metrics a test makes are deleted after it (other tests of the session stream
    every metric with unsent rows)."""
    yield
    with sql_engine.begin() as conn:
        for uid in _made:
            queries.deleteMetric(conn, uid)
    _made.clear()


def _metric(conn: sa.Connection, status: MetricStatus, rows: int,
            model_params: str | None) -> str:
    uid = queries.addMetric(conn, datasource="custom",
                            name=f"test.stream.{uuid.uuid4().hex[:10]}").uid
    _made.append(uid)
    if rows:
        queries.addMetricData(conn, uid, [(float(i), T0 + timedelta(minutes=5 * i))
                                          for i in range(rows)])
    queries.updateMetricColumns(conn, uid, {"status": int(status),
                                            "model_params": model_params})
    conn.commit()
    return uid


def test_metrics_with_unsent_rows_are_those_past_their_mark(sql_engine: sa.Engine) -> None:
    with sql_engine.connect() as conn:
        behind = _metric(conn, MetricStatus.ACTIVE, 5, json.dumps({MARK: 3, "x": [1]}))
        caught_up = _metric(conn, MetricStatus.ACTIVE, 5, json.dumps({MARK: 5}))
        never_sent = _metric(conn, MetricStatus.CREATE_PENDING, 2, json.dumps({"min": 0}))
        no_params = _metric(conn, MetricStatus.ACTIVE, 1, None)
        unreadable = _metric(conn, MetricStatus.ACTIVE, 1, "{not json")
        no_rows = _metric(conn, MetricStatus.CREATE_PENDING, 0, json.dumps({"min": 0}))
        not_streamed = _metric(conn, MetricStatus.UNMONITORED, 4, None)
        found = set(streaming_queries.get_metric_ids_with_unsent_rows(conn, STREAMABLE, MARK))
    mine = {behind, caught_up, never_sent, no_params, unreadable, no_rows, not_streamed}
    assert found & mine == {behind, never_sent, no_params, unreadable}


def test_locked_metrics_and_many_metrics_appended_at_once(sql_engine: sa.Engine) -> None:
    with sql_engine.connect() as conn:
        first = _metric(conn, MetricStatus.ACTIVE, 2, None)
        second = _metric(conn, MetricStatus.UNMONITORED, 0, None)
        missing = uuid.uuid4().hex
    with sql_engine.begin() as conn:
        locked = streaming_queries.lock_free_metrics(conn, [second, first, missing, first])
        assert {uid: (row.status, row.last_rowid, row.datasource)
                for uid, row in locked.items()} == {
            first: (MetricStatus.ACTIVE, 2, "custom"),
            second: (MetricStatus.UNMONITORED, 0, "custom")}
        assert streaming_queries.get_data_timestamps(conn, {first: 2, second: 1}) == {
            first: T0 + timedelta(minutes=5)}
        aware = datetime(2015, 6, 2, 14, 0, tzinfo=timezone(timedelta(hours=2)))
        added = metric_data_queries.append_metric_data_many(conn, {
            first: (2, [(7.5, T0 + timedelta(minutes=10)), (8, T0 + timedelta(minutes=15))]),
            second: (0, [(1.0, aware)]),
            missing: (0, [])})
    assert {uid: [(r["rowid"], r["timestamp"], r["metric_value"]) for r in rows]
            for uid, rows in added.items()} == {
        first: [(3, T0 + timedelta(minutes=10), 7.5), (4, T0 + timedelta(minutes=15), 8.0)],
        second: [(1, datetime(2015, 6, 2, 12, 0), 1.0)]}
    with sql_engine.connect() as conn:
        assert queries.getMetric(conn, first).last_rowid == 4
        assert queries.getMetric(conn, second).last_rowid == 1
        assert [(r.rowid, r.metric_value) for r in queries.getMetricData(conn, first)] == [
            (1, 0.0), (2, 1.0), (3, 7.5), (4, 8.0)]
        conn.rollback()
        with pytest.raises(DuplicateRecordError), conn.begin():   # last_rowid out of step
            metric_data_queries.append_metric_data_many(
                conn, {first: (3, [(9.0, T0 + timedelta(hours=1))])})
        assert queries.getMetric(conn, first).last_rowid == 4          # rolled back
        conn.rollback()
        with pytest.raises(InvalidInputError, match=r"data\[0\]"):
            metric_data_queries.append_metric_data_many(conn, {first: (4, [("x", T0)])})


def test_stream_positions_locked_and_model_params_set_at_once(sql_engine: sa.Engine) -> None:
    with sql_engine.connect() as conn:
        first = _metric(conn, MetricStatus.ACTIVE, 3, json.dumps({MARK: 1}))
        second = _metric(conn, MetricStatus.CREATE_PENDING, 0, None)
        untouched = _metric(conn, MetricStatus.ACTIVE, 0, json.dumps({"keep": 1}))
    with sql_engine.begin() as conn:
        locked = streaming_queries.lock_stream_positions(conn, [second, first,
                                                                uuid.uuid4().hex])
        assert {uid: (row.status, row.last_rowid, row.model_params)
                for uid, row in locked.items()} == {
            first: (MetricStatus.ACTIVE, 3, json.dumps({MARK: 1})),
            second: (MetricStatus.CREATE_PENDING, 0, None)}
        streaming_queries.set_model_params_many(conn, {first: json.dumps({MARK: 3}),
                                                       second: json.dumps({MARK: 0})})
        streaming_queries.set_model_params_many(conn, {})
    with sql_engine.connect() as conn:
        assert [json.loads(queries.getMetric(conn, uid).model_params)
                for uid in (first, second, untouched)] == [{MARK: 3}, {MARK: 0}, {"keep": 1}]
