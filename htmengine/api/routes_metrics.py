"""``/api/v1/metrics``: list and show metrics, start and stop their models, delete them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response

from htmengine.api import schemas, views
from htmengine.api.backend import EngineBackend
from htmengine.api.deps import get_backend
from htmengine.api.errors import ApiError, NotFound
from htmengine.exceptions import InvalidInputError, MetricAlreadyMonitored, ObjectNotFoundError
from htmengine.repository import api_queries
from htmengine.repository.metric_status import MetricStatus

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"], responses=schemas.ERROR_RESPONSES)
Backend = Annotated[EngineBackend, Depends(get_backend)]
NamePath = Annotated[str, "metric name"]
STATUS_NAMES = [status.name for status in MetricStatus]


def _status_code(status: str | None) -> int | None:
    if status is None:
        return None
    if status.isdigit() and int(status) in {int(s) for s in MetricStatus}:
        return int(status)
    try:
        return int(MetricStatus[status.upper()])
    except KeyError:
        raise ApiError(f"status must be one of {STATUS_NAMES} or their codes, got {status!r}",
                       422) from None


@router.get("", response_model=schemas.MetricPage, summary="Every metric, paged")
def list_metrics(backend: Backend,
                 status: Annotated[str | None, Query(description="status name or code")] = None,
                 offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> schemas.MetricPage:
    """Metrics ordered by name with rows stored and scored, last value, last likelihood and
    model range; `status` filters by status name (ACTIVE...) or code."""
    code = _status_code(status)
    with backend.db() as conn:
        total = api_queries.count_metrics(conn, code)
        summaries = api_queries.get_metric_summaries(conn, code, offset, limit)
    return schemas.MetricPage(total=total, offset=offset, limit=limit,
                              metrics=[views.metric_body(s) for s in summaries])


def _detail(backend: EngineBackend, name: str) -> schemas.MetricDetail:
    summary = backend.summary(name)
    depth = backend.model_input_depth(summary.uid)
    return views.detail_body(summary, backend.settings.min_rows_for_model, depth)


@router.get("/{name}", response_model=schemas.MetricDetail, summary="One metric and why")
def get_metric(name: NamePath, backend: Backend) -> schemas.MetricDetail:
    """One metric plus `reason`: what its model is doing, or why it is not scoring."""
    return _detail(backend, name)


@router.put("/{name}/model", response_model=schemas.ModelAnswer, status_code=200,
            summary="Monitor the metric (idempotent)",
            responses={201: {"model": schemas.ModelAnswer, "description": "model started"}})
def put_model(name: NamePath, backend: Backend, response: Response,
              params: Annotated[schemas.ModelRequest | None, Body()] = None
              ) -> schemas.ModelAnswer:
    """Start the metric's model (the metric is created if missing). With min and max the
    model starts at once; without, it is inferred from the data (it waits for 288 rows).
    201 when this request started monitoring, 200 when the metric was monitored already."""
    model_params = {key: value for key, value in (params.model_dump() if params else {}).items()
                    if value is not None}
    spec = {"datasource": "custom", "metricSpec": {"metric": name},
            "modelParams": model_params}
    created = True
    try:
        backend.adapter.monitorMetric(spec)
    except MetricAlreadyMonitored:
        created = False
    except InvalidInputError as error:
        raise ApiError(f"invalid model parameters for metric {name!r}: {error}", 422) from None
    detail = _detail(backend, name)
    response.status_code = 201 if created else 200
    return schemas.ModelAnswer(uid=detail.uid, name=name, status=detail.status,
                               created=created, reason=detail.reason)


@router.delete("/{name}/model", response_model=schemas.ModelAnswer,
               summary="Stop monitoring the metric (idempotent)")
def delete_model(name: NamePath, backend: Backend) -> schemas.ModelAnswer:
    """Delete the model (its checkpoint and input queue) and its scores; the data stays."""
    summary = backend.summary(name)
    if summary.status != MetricStatus.UNMONITORED:
        backend.adapter.unmonitorMetric(summary.uid)
    detail = _detail(backend, name)
    return schemas.ModelAnswer(uid=detail.uid, name=name, status=detail.status,
                               created=False, reason=detail.reason)


@router.delete("/{name}", response_model=schemas.Deleted,
               summary="Delete the metric, its data, model, queue and checkpoint")
def delete_metric(name: NamePath, backend: Backend) -> schemas.Deleted:
    """Delete everything of the metric. The model's checkpoint and input queue are removed
    by the model scheduler moments later."""
    summary = backend.summary(name)
    try:
        backend.adapter.deleteMetricByName(name)
    except ObjectNotFoundError:
        raise NotFound(f"unknown metric {name!r}") from None
    return schemas.Deleted(uid=summary.uid, name=name)


__all__ = ["router"]
