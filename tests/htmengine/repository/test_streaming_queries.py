"""htmengine.repository.streaming_queries against the real, migrated MariaDB database."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from htmengine.repository import queries, streaming_queries
from htmengine.repository.queries import MetricStatus

T0 = datetime(2015, 6, 1, 12, 0, 0)
MARK = "lastStreamedRowid"
STREAMABLE = (MetricStatus.ACTIVE, MetricStatus.CREATE_PENDING)


def _metric(conn: sa.Connection, status: MetricStatus, rows: int,
            model_params: str | None) -> str:
    uid = queries.addMetric(conn, datasource="custom",
                            name=f"test.stream.{uuid.uuid4().hex[:10]}").uid
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
