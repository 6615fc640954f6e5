"""The web dashboard: the page at ``/``, its scripts and styles under ``/static`` (uPlot
vendored, nothing loaded from elsewhere) and the two JSON reads it needs beyond
``/api/v1``'s: every metric with its reason and last day in one request
(``/api/v1/dashboard/overview``), every metric's last day (``/api/v1/dashboard/sparklines``)
and a metric's rows as compact columns (``/api/v1/dashboard/series/{name}``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from htmengine.api import schemas, views
from htmengine.api.backend import EngineBackend
from htmengine.api.deps import get_backend
from htmengine.api.errors import ApiError
from htmengine.api.sparkline_cache import SparklineCache
from htmengine.config import app_config
from htmengine.repository import api_queries, dashboard_queries

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_SERIES_ROWS = 200000
DEFAULT_THRESHOLD = 0.9999
SPARK_SECONDS = 86400
SPARK_BUCKETS = 48

router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"],
                   responses=schemas.ERROR_RESPONSES)
page_router = APIRouter()
Backend = Annotated[EngineBackend, Depends(get_backend)]
Epoch = Annotated[int | None, Query(ge=0, le=253402300799, description="epoch seconds")]


class Sparkline(BaseModel):
    """The last day of a metric in equal buckets, oldest first: mean value (5 significant
    digits) and highest likelihood (null: no row, or no score)."""

    v: list[float | None]
    a: list[float | None]


class Sparklines(BaseModel):
    """{metric uid: its sparkline} of every metric with data."""

    lines: dict[str, Sparkline]


class OverviewMetric(schemas.Metric):
    """A metric as the overview shows it."""

    reason: str


class Overview(BaseModel):
    """Every metric (by name) with the alert threshold the page marks points at."""

    threshold: float
    total: int
    metrics: list[OverviewMetric]


class Series(BaseModel):
    """A metric's rows in time order as columns: epoch seconds, value, raw anomaly score,
    anomaly likelihood; `truncated` when `limit` cut it."""

    uid: str
    name: str
    t: list[int]
    v: list[float]
    raw: list[float | None]
    lik: list[float | None]
    truncated: bool
    threshold: float = Field(description="the alert threshold the page marks points at")


def _naive(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def alert_threshold() -> float:
    """The ``[alerts] threshold`` of ``application.conf`` (0.9999 when not set)."""
    config = app_config()
    if config.has_option("alerts", "threshold"):
        return float(config.getfloat("alerts", "threshold"))
    return DEFAULT_THRESHOLD


@router.get("/overview", response_model=Overview, summary="Every metric and its reason")
def overview(backend: Backend) -> Overview:
    """Every metric with its reason, last value and likelihood (sparklines come from
    ``/sparklines``, so the table shows before they are computed)."""
    with backend.db() as conn:
        total = api_queries.count_metrics(conn)
        summaries = api_queries.get_metric_summaries(conn, None, 0, max(total, 1))
    metrics = [OverviewMetric(
        **views.metric_body(summary).model_dump(),
        reason=views.reason_for(summary, backend.settings.min_rows_for_model, None))
        for summary in summaries]
    return Overview(threshold=alert_threshold(), total=len(metrics), metrics=metrics)


@router.get("/sparklines", response_model=Sparklines, summary="Every metric's last day")
def sparklines(backend: Backend, request: Request) -> Response:
    """{uid: the last day before the metric's newest sample in 48 half-hour buckets}, encoded
    once (as the series)."""
    cache: SparklineCache = request.app.state.sparkline_cache
    with backend.db() as conn:
        lines = cache.get(conn)
    body = {"lines": {uid: _sparkline(points) for uid, points in lines.items()}}
    return Response(json.dumps(body, allow_nan=False, separators=(",", ":")),
                    media_type="application/json")


def _sparkline(points: list[dashboard_queries.SparkPoint]) -> dict[str, list[float | None]]:
    """A Sparkline's fields: 5 significant digits of the mean, the likelihood to 6 places."""
    values: list[float | None] = [None] * SPARK_BUCKETS
    likelihoods: list[float | None] = [None] * SPARK_BUCKETS
    for point in points:
        index = SPARK_BUCKETS - 1 - point.age
        values[index] = float(f"{point.value:.5g}")
        likelihoods[index] = (None if point.max_likelihood is None
                              else round(point.max_likelihood, 6))
    return {"v": values, "a": likelihoods}


@router.get("/series/{name}", response_model=Series, summary="A metric's rows as columns")
def series(name: str, backend: Backend, since: Epoch = None, until: Epoch = None,
           limit: Annotated[int, Query(ge=1, le=MAX_SERIES_ROWS)] = MAX_SERIES_ROWS
           ) -> Response:
    """Rows from `since` to `until` (epoch seconds, inclusive), the first `limit`. The body
    is built once with the standard JSON encoder: tens of thousands of numbers validated and
    encoded again field by field would cost more than reading them."""
    if since is not None and until is not None and since > until:
        raise ApiError(f"since ({since}) is after until ({until})", 422)
    summary = backend.summary(name)
    with backend.db() as conn:
        columns = dashboard_queries.get_series(conn, summary.uid, _naive(since), _naive(until),
                                               limit + 1)
    shown = min(limit, len(columns.timestamps))
    body = {"uid": summary.uid, "name": name, "t": columns.timestamps[:shown],
            "v": columns.values[:shown], "raw": columns.raw_scores[:shown],
            "lik": columns.likelihoods[:shown], "truncated": len(columns.timestamps) > limit,
            "threshold": alert_threshold()}
    return Response(json.dumps(body, allow_nan=False, separators=(",", ":")),
                    media_type="application/json")


@page_router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The dashboard's page."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def install_dashboard(app: FastAPI) -> None:
    """Serve the page at ``/``, its files under ``/static`` and the dashboard's reads."""
    app.state.sparkline_cache = SparklineCache(SPARK_SECONDS, SPARK_BUCKETS)
    app.include_router(router)
    app.include_router(page_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


__all__ = ["install_dashboard", "router"]
