"""``/api/v1/metrics/{name}/data`` and ``/api/v1/anomalies``: send samples, read rows and
anomalies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query

from htmengine import engine_metrics
from htmengine.api import schemas
from htmengine.api.backend import EngineBackend
from htmengine.api.deps import get_backend
from htmengine.api.errors import ApiError
from htmengine.api.samples import check_samples, parse_timestamp, verdicts
from htmengine.repository import api_queries

router = APIRouter(prefix="/api/v1", tags=["data"], responses=schemas.ERROR_RESPONSES)
Backend = Annotated[EngineBackend, Depends(get_backend)]
MAX_SAMPLES = 10000


def _time_param(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_timestamp(raw)
    except ValueError as error:
        raise ApiError(f"query parameter {name}: {error}", 422) from None


@router.post("/metrics/{name}/data", response_model=schemas.SamplesAnswer,
             summary="Store samples (the metric is created if missing)")
def post_data(name: str, backend: Backend,
              samples: Annotated[list[schemas.Sample], Body(max_length=MAX_SAMPLES)]
              ) -> schemas.SamplesAnswer:
    """Store `[{"timestamp": ..., "value": ...}]` in order; each sample's answer says whether
    it was stored (with its rowid) or why not: not a finite number, a bad timestamp, older
    than the last stored sample, a duplicate timestamp. Stored samples go to the model like
    samples sent over graphite."""
    if not samples:
        raise ApiError("the body must be a non-empty JSON array of samples", 422)
    if not name.strip() or len(name) > 255 or any(ch.isspace() for ch in name):
        raise ApiError(f"invalid metric name {name!r}: 1 to 255 characters, no whitespace",
                       422)
    engine_metrics.SAMPLES_RECEIVED.inc(len(samples))
    checked = check_samples(samples)
    for sample in checked:
        if sample.reason is not None:
            engine_metrics.SAMPLES_REJECTED.labels("not_finite" if sample.timestamp
                                                   else "malformed").inc()
    usable = [(s.timestamp, s.value) for s in checked
              if s.reason is None and s.timestamp is not None and s.value is not None]
    with backend.db():
        uid = backend.adapter.getOrCreateMetric(name)
    last_before = backend.summary(name).last_timestamp
    result = None
    if usable:
        result, _sent = backend.store_samples(uid, usable, source="HTTP API")
    answers = verdicts(checked, result, last_before)
    accepted = sum(1 for answer in answers if answer.accepted)
    return schemas.SamplesAnswer(uid=uid, name=name, accepted=accepted,
                                 rejected=len(answers) - accepted, samples=answers)


@router.get("/metrics/{name}/data", response_model=schemas.DataPage,
            summary="Rows of a metric in time order")
def get_data(name: str, backend: Backend,
             since: Annotated[str | None, Query(description="epoch seconds or ISO 8601")] = None,
             until: Annotated[str | None, Query(description="epoch seconds or ISO 8601")] = None,
             limit: Annotated[int, Query(ge=1, le=100000)] = 1000,
             minAnomaly: Annotated[float | None, Query(ge=0, le=1)] = None  # noqa: N803
             ) -> schemas.DataPage:
    """Value, raw score, likelihood and display value of the rows from `since` to `until`
    (inclusive), the first `limit` of them; `minAnomaly` keeps rows whose likelihood
    reaches it."""
    start, end = _time_param(since, "since"), _time_param(until, "until")
    summary = backend.summary(name)
    with backend.db() as conn:
        rows = api_queries.get_data_page(conn, summary.uid, start, end, limit, minAnomaly)
    return schemas.DataPage(uid=summary.uid, name=name, rows=[
        schemas.DataRow(rowid=r.rowid, timestamp=r.timestamp, value=r.value,
                        rawAnomalyScore=r.raw_anomaly_score,
                        anomalyLikelihood=r.anomaly_likelihood, displayValue=r.display_value)
        for r in rows])


@router.get("/anomalies", response_model=schemas.AnomalyPage,
            summary="Recent rows over a likelihood threshold, across metrics")
def get_anomalies(backend: Backend,
                  since: Annotated[str | None, Query(description="epoch seconds or ISO 8601")]
                  = None,
                  threshold: Annotated[float, Query(ge=0, le=1)] = 0.9999,
                  limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> schemas.AnomalyPage:
    """Rows of every metric whose likelihood is at least `threshold`, at or after `since`,
    newest first."""
    start = _time_param(since, "since")
    with backend.db() as conn:
        rows = api_queries.get_anomalies(conn, threshold, start, limit)
    return schemas.AnomalyPage(threshold=threshold, anomalies=[
        schemas.Anomaly(uid=r.uid, name=r.name, rowid=r.rowid, timestamp=r.timestamp,
                        value=r.value, rawAnomalyScore=r.raw_anomaly_score,
                        anomalyLikelihood=r.anomaly_likelihood) for r in rows])
