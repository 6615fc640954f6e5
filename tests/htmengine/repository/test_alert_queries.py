"""claim_alert on the real database: once per row, the per-metric interval, state kept in
metric.model_params next to the other writers' keys, unknown metrics."""

from __future__ import annotations

import json
import uuid

import pytest

from htmengine.repository import queries
from htmengine.repository.alert_queries import ALERT_STATE_KEY, AlertDecision, claim_alert

pytestmark = pytest.mark.integration


def test_claims_once_per_row_and_respects_the_interval(sql_engine) -> None:
    with sql_engine.connect() as conn:
        uid = queries.addMetric(conn, name=f"alerts.{uuid.uuid4().hex[:8]}",
                                datasource="custom",
                                model_params=json.dumps({"lastStreamedRowid": 7})).uid
        assert claim_alert(conn, uid, 5, 1000.0, 300) is AlertDecision.SEND
        assert claim_alert(conn, uid, 5, 1001.0, 300) is AlertDecision.DUPLICATE
        assert claim_alert(conn, uid, 4, 1002.0, 300) is AlertDecision.DUPLICATE
        assert claim_alert(conn, uid, 6, 1200.0, 300) is AlertDecision.TOO_SOON
        assert claim_alert(conn, uid, 6, 1400.0, 300) is AlertDecision.DUPLICATE
        assert claim_alert(conn, uid, 7, 1300.0, 300) is AlertDecision.SEND
        assert claim_alert(conn, uid, 8, 1300.0, 0) is AlertDecision.SEND
        params = json.loads(queries.getMetric(conn, uid).model_params)
        assert params == {"lastStreamedRowid": 7,
                          ALERT_STATE_KEY: {"lastRowid": 8, "lastAlertAt": 1300.0}}
        assert claim_alert(conn, "no-such-uid", 1, 0.0, 0) is AlertDecision.UNKNOWN_METRIC
        queries.deleteMetric(conn, uid)
