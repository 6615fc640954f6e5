"""``GET /metrics``: Prometheus exposition of every engine process's counters plus the
engine's state read at scrape time (models by status, queue depths, per-metric gauges)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from htmengine import engine_metrics
from htmengine.api.backend import EngineBackend
from htmengine.api.deps import get_backend
from htmengine.api.errors import Unavailable
from htmengine.api.routes_health import model_uids
from htmengine.metric_reasons import status_name
from htmengine.repository import api_queries
from htmengine.repository.metric_status import MetricStatus

router = APIRouter(tags=["prometheus"])
Backend = Annotated[EngineBackend, Depends(get_backend)]


class EngineStateCollector(Collector):
    """Gauges read from MySQL and RabbitMQ when scraped."""

    def __init__(self, backend: EngineBackend) -> None:
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        """Models by status, rows stored and scored, queue depths, per-metric gauges."""
        backend = self._backend
        up = GaugeMetricFamily("htmengine_backend_up", "1 if the API reaches it",
                               labels=["backend"])
        try:
            with backend.db() as conn:
                by_status = api_queries.get_metrics_by_status(conn)
                stored, scored = api_queries.get_scored_counts(conn)
                last_values = (api_queries.get_last_values(conn)
                               if backend.settings.per_metric_gauges else [])
            up.add_metric(["mysql"], 1)
        except Unavailable:
            up.add_metric(["mysql"], 0)
        else:
            models = GaugeMetricFamily("htmengine_models", "Metrics by model status",
                                       labels=["status"])
            for status in MetricStatus:
                models.add_metric([status_name(status)], by_status.get(int(status), 0))
            yield models
            yield GaugeMetricFamily("htmengine_rows_stored", "metric_data rows stored",
                                    value=stored)
            yield GaugeMetricFamily("htmengine_rows_with_score",
                                    "metric_data rows that have a raw anomaly score",
                                    value=scored)
            if backend.settings.per_metric_gauges:
                value = GaugeMetricFamily("htmengine_metric_last_value",
                                          "Newest stored value", labels=["metric"])
                likelihood = GaugeMetricFamily("htmengine_metric_last_anomaly_likelihood",
                                               "Newest anomaly likelihood", labels=["metric"])
                for name, last_value, last_likelihood in last_values:
                    if last_value is not None:
                        value.add_metric([name], last_value)
                    if last_likelihood is not None:
                        likelihood.add_metric([name], last_likelihood)
                yield value
                yield likelihood
        try:
            depths = backend.queue_depths(model_uids(backend))
            up.add_metric(["rabbitmq"], 1)
        except Unavailable:
            up.add_metric(["rabbitmq"], 0)
        else:
            queue = GaugeMetricFamily("htmengine_queue_depth", "Messages ready in a queue",
                                      labels=["queue"])
            for name, depth in depths.items():
                if depth is not None:
                    queue.add_metric([name], depth)
            yield queue
        yield up


@router.get("/metrics", summary="Prometheus exposition", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(backend: Backend) -> Response:
    """Counters and histograms of every engine process (samples received, stored, rejected by
    reason, rows scored, score latency, model loads, evictions, checkpoints, heartbeats) and
    gauges of the engine's state."""
    registry = CollectorRegistry()
    for collector in _process_collectors():
        registry.register(collector)
    registry.register(EngineStateCollector(backend))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _process_collectors() -> list[Collector]:
    source = engine_metrics.exposition_registry()
    return [_Forward(source)]


class _Forward(Collector):
    """Re-exposes another registry's metrics."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The source registry's metrics."""
        yield from self._source.collect()
