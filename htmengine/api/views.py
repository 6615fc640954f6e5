"""Turning repository rows into API bodies (metric summaries, model range, reason)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from htmengine.api import schemas
from htmengine.metric_reasons import MetricState, metric_reason, status_name
from htmengine.repository.api_queries import MetricSummary


def _model_params(summary: MetricSummary) -> dict[str, Any]:
    try:
        decoded = json.loads(summary.model_params) if summary.model_params else {}
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def model_range(summary: MetricSummary) -> schemas.ModelRange | None:
    """The model's encoder range as recorded when it was started (None if unknown)."""
    recorded = _model_params(summary).get("modelRange")
    if not isinstance(recorded, dict):
        return None
    return schemas.ModelRange(**{key: recorded.get(key)
                                 for key in ("min", "max", "minResolution")})


def create_requested_at(summary: MetricSummary) -> datetime | None:
    """When the model was requested (UTC), if recorded."""
    value = _model_params(summary).get("createRequestedAt")
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def metric_body(summary: MetricSummary) -> schemas.Metric:
    """The list entry of one metric."""
    return schemas.Metric(
        uid=summary.uid, name=summary.name, status=status_name(summary.status),
        statusCode=summary.status, rowsStored=summary.rows_stored,
        rowsScored=summary.rows_scored, lastTimestamp=summary.last_timestamp,
        lastValue=summary.last_value, lastAnomalyLikelihood=summary.last_likelihood,
        modelRange=model_range(summary), message=summary.message)


def reason_for(summary: MetricSummary, min_rows_for_model: int,
               input_queue_depth: int | None, start_hint: str | None = None) -> str:
    """The `htmengine.metric_reasons` sentence of one metric (`start_hint`: how a person
    starts its model, by default the API's PUT)."""
    return metric_reason(MetricState(
        name=summary.name, status=summary.status, rows_stored=summary.rows_stored,
        rows_scored=summary.rows_scored, min_rows_for_model=min_rows_for_model,
        message=summary.message, create_requested_at=create_requested_at(summary),
        input_queue_depth=input_queue_depth, start_hint=start_hint))


def detail_body(summary: MetricSummary, min_rows_for_model: int,
                input_queue_depth: int | None) -> schemas.MetricDetail:
    """One metric with its reason."""
    return schemas.MetricDetail(
        **metric_body(summary).model_dump(),
        reason=reason_for(summary, min_rows_for_model, input_queue_depth),
        rowsWaiting=max(0, summary.rows_stored - summary.rows_scored),
        inputQueueDepth=input_queue_depth)
