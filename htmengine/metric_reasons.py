"""Person-readable sentences that say what a metric's model is doing and why it is not scoring.

Pure functions over a `MetricState` (no database, no broker), shared by the HTTP API's
``reason`` field and any command-line status tool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from htmengine.repository.metric_status import MetricStatus

__all__ = ["MetricState", "metric_reason", "sample_rejection", "status_name"]


@dataclass(frozen=True)
class MetricState:
    """What is known about one metric when its reason is written."""

    name: str
    status: int
    rows_stored: int
    rows_scored: int
    min_rows_for_model: int = 288
    message: str | None = None
    create_requested_at: datetime | None = None
    input_queue_depth: int | None = None
    now: datetime | None = None
    # How a person starts the model with a range (default: the HTTP API's PUT).
    start_hint: str | None = None

    def how_to_start(self) -> str:
        """The request that starts this metric's model."""
        return self.start_hint or f"PUT /api/v1/metrics/{self.name}/model"


def status_name(status: int) -> str:
    """The status code's name (``ACTIVE``...), or ``UNKNOWN(<code>)``."""
    try:
        return MetricStatus(status).name
    except ValueError:
        return f"UNKNOWN({status})"


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _age(since: datetime, now: datetime) -> str:
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _unmonitored(state: MetricState) -> str:
    return (f"Not monitored: {_rows(state.rows_stored)} stored, no model. Start one with "
            f"{state.how_to_start()} (optionally with min and max).")


def _pending_data(state: MetricState) -> str:
    needed = max(0, state.min_rows_for_model - state.rows_stored)
    return (f"Waiting for data: needs {state.min_rows_for_model} rows to infer its range: "
            f"{state.rows_stored} so far ({needed} to go). Give min and max to "
            f"{state.how_to_start()} to start at once.")


def _create_pending(state: MetricState) -> str:
    text = "Model being created"
    if state.create_requested_at is not None:
        now = state.now or datetime.now(UTC).replace(tzinfo=None)
        text += (f" since {state.create_requested_at:%Y-%m-%d %H:%M:%S} UTC "
                 f"({_age(state.create_requested_at, now)} ago)")
    return (f"{text}: the model scheduler has not confirmed it yet; "
            f"{_rows(state.rows_stored - state.rows_scored)} wait to be scored.")


def _error(state: MetricState) -> str:
    message = (state.message or "").strip() or "no message was recorded"
    return (f"Error: the model failed and scores nothing: {message}. Unmonitor and monitor "
            f"it again (DELETE then PUT /api/v1/metrics/{state.name}/model) to restart it.")


def _active(state: MetricState) -> str:
    waiting = max(0, state.rows_stored - state.rows_scored)
    text = f"Active: {_rows(state.rows_scored)} scored, {_rows(waiting)} waiting to be scored"
    if state.input_queue_depth is not None:
        depth = state.input_queue_depth
        text += f", {depth} input batch{'' if depth == 1 else 'es'} queued for the model"
    return text + "."


_WRITERS: dict[int, Callable[[MetricState], str]] = {
    MetricStatus.UNMONITORED: _unmonitored,
    MetricStatus.PENDING_DATA: _pending_data,
    MetricStatus.CREATE_PENDING: _create_pending,
    MetricStatus.ERROR: _error,
    MetricStatus.ACTIVE: _active,
}


def metric_reason(state: MetricState) -> str:
    """One or two sentences a person understands, for every status of a metric."""
    writer = _WRITERS.get(int(state.status))
    if writer is None:
        return f"Unknown status {state.status}: {state.message or 'no message'}."
    return writer(state)


def sample_rejection(timestamp: datetime, previous: datetime | None,
                     status: int | None = None) -> str | None:
    """Why the metric storer will not store a sample at `timestamp` after `previous` (the
    newest stored or accepted before it) for a metric in `status`; None if it will."""
    if status == MetricStatus.ERROR:
        return ("not stored: the metric is in status ERROR and stores nothing until its model "
                "is deleted")
    if previous is None or timestamp > previous:
        return None
    if timestamp == previous:
        return f"duplicate: a sample at {previous:%Y-%m-%d %H:%M:%S} is stored already"
    return (f"older than the last stored sample ({previous:%Y-%m-%d %H:%M:%S}); samples must "
            f"arrive in time order")
