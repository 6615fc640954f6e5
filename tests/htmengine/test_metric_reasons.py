"""The reason sentences of every metric state (pure function)."""

from __future__ import annotations

from datetime import datetime

from htmengine.metric_reasons import MetricState, metric_reason, status_name
from htmengine.repository.metric_status import MetricStatus


def test_unmonitored_says_how_to_start() -> None:
    assert metric_reason(MetricState("cpu", MetricStatus.UNMONITORED, 1, 0)) == (
        "Not monitored: 1 row stored, no model. Start one with PUT /api/v1/metrics/cpu/model "
        "(optionally with min and max).")


def test_pending_data_counts_rows() -> None:
    assert metric_reason(MetricState("cpu", MetricStatus.PENDING_DATA, 120, 0)).startswith(
        "Waiting for data: needs 288 rows to infer its range: 120 so far (168 to go).")
    text = metric_reason(MetricState("cpu", MetricStatus.PENDING_DATA, 300, 0,
                                     min_rows_for_model=50))
    assert "needs 50 rows to infer its range: 300 so far (0 to go)" in text


def test_create_pending_says_since_when() -> None:
    state = MetricState("cpu", MetricStatus.CREATE_PENDING, 10, 0,
                        create_requested_at=datetime(2026, 1, 2, 3, 4, 5),
                        now=datetime(2026, 1, 2, 3, 9, 5))
    assert metric_reason(state) == (
        "Model being created since 2026-01-02 03:04:05 UTC (5 min ago): the model scheduler "
        "has not confirmed it yet; 10 rows wait to be scored.")
    later = MetricState("cpu", MetricStatus.CREATE_PENDING, 0, 0,
                        create_requested_at=datetime(2026, 1, 2, 3, 4, 5),
                        now=datetime(2026, 1, 2, 8, 0, 0))
    assert "(4 h 55 min ago)" in metric_reason(later)
    assert metric_reason(MetricState("cpu", MetricStatus.CREATE_PENDING, 1, 0)).startswith(
        "Model being created: ")


def test_error_gives_the_message() -> None:
    text = metric_reason(MetricState("cpu", MetricStatus.ERROR, 3, 0, message="boom\n"))
    assert text.startswith("Error: the model failed and scores nothing: boom. ")
    assert "no message was recorded" in metric_reason(MetricState("c", MetricStatus.ERROR, 0, 0))


def test_active_gives_backlog_and_queue_depth() -> None:
    assert metric_reason(MetricState("cpu", MetricStatus.ACTIVE, 60, 10,
                                     input_queue_depth=1)) == (
        "Active: 10 rows scored, 50 rows waiting to be scored, 1 input batch queued for the "
        "model.")
    assert metric_reason(MetricState("cpu", MetricStatus.ACTIVE, 1, 1)) == (
        "Active: 1 row scored, 0 rows waiting to be scored.")


def test_unknown_status() -> None:
    assert metric_reason(MetricState("cpu", 3, 0, 0)) == "Unknown status 3: no message."
    assert status_name(3) == "UNKNOWN(3)" and status_name(8) == "PENDING_DATA"
