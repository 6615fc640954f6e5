"""The skeleton web app tells what the engine will do (issue 10, item 4), over real HTTP to the
real web app on the session's database: a PUT whose model must wait for data gets a second
line with the row count; a POST answers with the storer's reason instead of "Saved" for a
sample it would reject, and does not publish that sample."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.repository import engineFactory, queries

pytestmark = pytest.mark.integration

TS = 1434229721  # 2015-06-13 21:08:41 UTC


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def test_put_that_must_wait_for_data_says_so(webapp, sql_engine) -> None:
    name = f"skeleton.wait.{uuid.uuid4().hex[:8]}"
    uid = createDatasourceAdapter("custom").createMetric(name)
    with engineFactory().connect() as conn:
        queries.addMetricData(conn, uid, [(float(i), _utc(TS + 300 * i)) for i in range(120)])
    resp = webapp.request("PUT", f"/{name}")
    assert resp.status == 201, resp.text
    assert resp.text == (
        f"Created {uid}\n"
        f"Waiting for data: needs 288 rows to infer its range: 120 so far (168 to go). Give "
        f'min and max to PUT /{name} with {{"min": ..., "max": ...}} to start at once.\n')
    with_range = webapp.request("PUT", f"/{name}.ranged", '{"min": 0, "max": 10}')
    assert with_range.status == 201 and with_range.text.count("\n") == 1


def test_post_answers_the_reason_for_samples_the_storer_rejects(webapp, sql_engine,
                                                                 skeleton_bus,
                                                                 custom_metrics_queue) -> None:
    name = f"skeleton.reject.{uuid.uuid4().hex[:8]}"
    uid = createDatasourceAdapter("custom").createMetric(name)
    with engineFactory().connect() as conn:
        queries.addMetricData(conn, uid, [(1.0, _utc(TS)), (2.0, _utc(TS + 60))])
    body = f"3.5 {TS + 30}\n4.5 {TS + 60}\n5.5 {TS + 120}\n6.5 {TS + 120}\n7.5 {TS + 90}\n"
    resp = webapp.request("POST", f"/{name}", body)
    assert resp.status == 200, resp.text
    assert resp.text.splitlines() == [
        f"Rejected /{name} 3.500000 @ {TS + 30}: older than the last stored sample "
        f"(2015-06-13 21:09:41); samples must arrive in time order",
        f"Rejected /{name} 4.500000 @ {TS + 60}: duplicate: a sample at 2015-06-13 21:09:41 "
        f"is stored already",
        f"Saved /{name} 5.500000 @ {TS + 120}",
        f"Rejected /{name} 6.500000 @ {TS + 120}: duplicate: a sample at 2015-06-13 21:10:41 "
        f"is stored already",
        f"Rejected /{name} 7.500000 @ {TS + 90}: older than the last stored sample "
        f"(2015-06-13 21:10:41); samples must arrive in time order",
    ]
    message = skeleton_bus.get(custom_metrics_queue)
    assert message is not None
    skeleton_bus.ack(message.delivery_tag)
    assert json.loads(message.body)["data"] == [f"{name} 5.5 {TS + 120}"]
    assert skeleton_bus.get(custom_metrics_queue) is None
