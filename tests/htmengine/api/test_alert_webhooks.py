"""Alert webhooks end to end: the engine under supervisord with its alert service posting to
a local receiver that first fails (500), then hangs past the timeout, then recovers. Every row
whose likelihood reaches the threshold is delivered exactly once and none is lost; scoring
finishes while the receiver is still failing; a restarted alert service and a republished
result deliver nothing again."""

from __future__ import annotations

import time

import pytest
from api_support import (
    ALERT_THRESHOLD,
    LiveEngine,
    override,
    post_samples,
    wait_scored,
    wait_status,
)
from process_support import wait_for
from supervised_support import T0

from htmengine.pipeline.results_serialization import (
    composeInferenceResultsMessage,
    serializeModelResult,
)
from htmengine.repository import engineFactory, queries
from nta_utils.message_bus import MessageBus

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS = 420


def _value(row: int) -> float:
    """A daily-looking pattern that breaks after row 360 (so some likelihoods are high)."""
    base = 20 + 40 * ((row // 6) % 2) + (row % 5)
    return float(base if row < 360 else 95 - base * (row % 3 == 0))


def _time_scoring(live: LiveEngine, name: str) -> float:
    """Seconds from posting ROWS samples to a new model until all are scored."""
    assert live.request("PUT", f"/api/v1/metrics/{name}/model",
                        json={"min": 0, "max": 100}).status_code == 201
    wait_status(live, name, "ACTIVE")
    started = time.monotonic()
    post_samples(live, name, [{"timestamp": T0 + 300 * row, "value": _value(row)}
                              for row in range(ROWS)])
    wait_scored(live, name, ROWS)
    return time.monotonic() - started


def _expected(uid: str) -> set[str]:
    """Idempotency keys of the metric's rows whose likelihood reaches the threshold."""
    with engineFactory().connect() as conn:
        return {f"{uid}-{r.rowid}" for r in queries.getMetricData(conn, uid)
                if r.anomaly_score >= ALERT_THRESHOLD}


def _keys(live: LiveEngine, uid: str) -> list[str]:
    return [r.key for r in live.receiver.accepted() if r.payload["uid"] == uid]


def test_each_alert_delivered_once_through_failures_timeouts_and_restarts(
        live: LiveEngine, results_exchange: str) -> None:
    name = "api.alerts"
    control_seconds = _time_scoring(live, "api.alerts.control")   # receiver answering
    control = live.metric("api.alerts.control")["uid"]
    wait_for(lambda: sorted(_keys(live, control)) == sorted(_expected(control)), 60,
             interval=0.5, what="the control metric's alerts")
    live.receiver.mode = "fail"
    scoring_seconds = _time_scoring(live, name)
    uid = live.metric(name)["uid"]
    with engineFactory().connect() as conn:
        rows = list(queries.getMetricData(conn, uid))
    expected = _expected(uid)
    assert 3 <= len(expected) < ROWS / 2, sorted(r.anomaly_score for r in rows)[-20:]
    # scoring did not wait for the failing receiver
    assert _keys(live, uid) == []
    assert scoring_seconds < 3 * control_seconds + 10, (scoring_seconds, control_seconds)
    wait_for(lambda: live.receiver.seen("fail") > 0, 30, what="a failed delivery")

    live.receiver.mode = "hang"
    wait_for(lambda: live.receiver.seen("hang") >= 2, 30, what="timed-out deliveries")
    live.receiver.mode = "ok"
    try:
        wait_for(lambda: set(_keys(live, uid)) >= expected, 120, interval=0.5,
                 what="every alert to be delivered")
    except AssertionError as error:
        raise AssertionError(f"{error}: missing {expected - set(_keys(live, uid))}\n"
                             f"{live.log_tails()}") from None
    time.sleep(2)
    delivered = _keys(live, uid)
    assert sorted(delivered) == sorted(expected), "an alert was delivered twice or wrongly"

    payload = next(r.payload for r in live.receiver.accepted() if r.payload["uid"] == uid)
    row = next(r for r in rows if r.rowid == payload["rowid"])
    assert payload["metric"] == name and payload["value"] == row.metric_value
    assert payload["rawAnomalyScore"] == row.raw_anomaly_score
    assert payload["anomalyLikelihood"] == row.anomaly_score >= ALERT_THRESHOLD
    assert 0 <= payload["logLikelihood"] <= 1 and payload["threshold"] == ALERT_THRESHOLD
    assert payload["timestamp"] == row.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    linked = live.client.get(payload["link"]).json()["rows"]
    assert [r["rowid"] for r in linked] == [payload["rowid"]]

    # a restarted alert service and a republished (redelivered) result send nothing again
    old = live.supervised.kill9("alert_service")
    live.supervised.waitRestarted("alert_service", old)
    with engineFactory().connect() as conn:
        metric = queries.getMetric(conn, uid)
        alerted = list(queries.getMetricData(conn, uid, score=ALERT_THRESHOLD))
    with MessageBus() as bus:
        bus.publish(results_exchange, "", serializeModelResult(
            composeInferenceResultsMessage(metric, alerted)), mandatory=False)
        wait_for(lambda: bus.message_count(
            live.supervised.env[override("alerts", "queue_name")]) == 0, 30)
    time.sleep(3)
    assert sorted(_keys(live, uid)) == sorted(expected)
    print(f"alerts delivered: {len(expected)}; {ROWS} rows scored in {scoring_seconds:.1f} s "
          f"while the receiver failed, {control_seconds:.1f} s while it answered")
