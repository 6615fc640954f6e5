"""Prometheus instruments of the engine's processes, true across processes.

Every engine process (listener, storer, scheduler and its slot processes, anomaly service,
alert service, API) counts into prometheus_client's multiprocess mode when
``$PROMETHEUS_MULTIPROC_DIR`` is set (supervisord-base.conf sets it to
``$HTMENGINE_RUN_DIR/prometheus``; the run scripts empty it at start), and the API's
``GET /metrics`` adds up every process's files. Without it each process counts in memory only.

Services also beat a heartbeat gauge (`start_heartbeat`), from which the API's health check
tells how long ago each service was last alive.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_multiproc_dir = os.environ.get(MULTIPROC_ENV)
if _multiproc_dir:
    os.makedirs(_multiproc_dir, exist_ok=True)

# prometheus_client picks its value class from the environment when first imported, so the
# directory must exist first (above).
from prometheus_client import (  # noqa: E402
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)

__all__ = [
    "ALERTS", "CHECKPOINTS", "HEARTBEAT", "MODEL_EVICTIONS", "MODEL_LOADS", "REJECT_REASONS",
    "ROWS_SCORED", "SAMPLES_RECEIVED", "SAMPLES_REJECTED", "SAMPLES_STORED",
    "SCORE_LATENCY", "exposition_registry", "multiprocess_enabled", "observe_scored",
    "record_streamed", "start_heartbeat",
]

REJECT_REASONS = ("malformed", "out_of_order", "duplicate", "metric_status", "not_finite")

SAMPLES_RECEIVED = Counter("htmengine_samples_received",
                           "Sample lines read by the metric storer (or the API)")
SAMPLES_STORED = Counter("htmengine_samples_stored", "Samples stored as metric_data rows")
SAMPLES_REJECTED = Counter("htmengine_samples_rejected", "Samples rejected, by reason",
                           ["reason"])
ROWS_SCORED = Counter("htmengine_rows_scored", "Rows given an anomaly score")
SCORE_LATENCY = Histogram(
    "htmengine_score_latency_seconds",
    "Seconds from a row being sent to its model (right after it is stored) to its score",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800))
MODEL_LOADS = Counter("htmengine_model_loads",
                      "Models loaded into a slot process (from a checkpoint or a definition)")
MODEL_EVICTIONS = Counter("htmengine_model_evictions",
                          "Models dropped from a slot process's in-memory cache")
CHECKPOINTS = Counter("htmengine_model_checkpoints", "Model checkpoints written")
ALERTS = Counter("htmengine_alerts", "Alert decisions and deliveries, by outcome",
                 ["outcome"])
HEARTBEAT = Gauge("htmengine_service_heartbeat_timestamp_seconds",
                  "Unix time of a service's latest heartbeat", ["service"],
                  multiprocess_mode="max")

ALERT_OUTCOMES = ("delivered", "failed", "duplicate", "too_soon", "unknown")
# Label values exist from the start, so dashboards show zeros rather than nothing.
for _reason in REJECT_REASONS:
    SAMPLES_REJECTED.labels(_reason)
for _outcome in ALERT_OUTCOMES:
    ALERTS.labels(_outcome)

HEARTBEAT_SECONDS = 2.0
# Keys in metric.model_params: when rows up to a rowid were sent to the model (unix time).
STREAMED_AT_KEY = "streamedAt"
_STREAMED_AT_KEEP = 32


def multiprocess_enabled() -> bool:
    """True when this process counts into the shared multiprocess directory."""
    return bool(_multiproc_dir)


def exposition_registry() -> CollectorRegistry:
    """A registry holding every process's instruments (multiprocess mode), or this
    process's own default registry."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def start_heartbeat(service: str, interval: float = HEARTBEAT_SECONDS) -> threading.Thread:
    """Beat `service`'s heartbeat now and every `interval` seconds from a daemon thread."""
    def beat() -> None:
        while True:
            HEARTBEAT.labels(service).set(time.time())
            time.sleep(interval)

    thread = threading.Thread(target=beat, name=f"heartbeat-{service}", daemon=True)
    thread.start()
    return thread


def record_streamed(model_params: dict[str, Any], last_rowid: int) -> None:
    """Note in `model_params` (metric.model_params) that rows up to `last_rowid` were sent to
    the model now; only the latest few marks are kept."""
    marks = model_params.get(STREAMED_AT_KEY)
    if not isinstance(marks, list):
        marks = []
    marks.append([int(last_rowid), time.time()])
    model_params[STREAMED_AT_KEY] = marks[-_STREAMED_AT_KEEP:]


def observe_scored(model_params: dict[str, Any], rowids: list[int]) -> None:
    """Count rows `rowids` as scored now and observe each one's latency from the send mark
    that covers it (rows sent before any mark was kept are counted, not timed)."""
    ROWS_SCORED.inc(len(rowids))
    marks = model_params.get(STREAMED_AT_KEY)
    if not isinstance(marks, list) or not marks:
        return
    now = time.time()
    ordered = sorted((int(rowid), float(sent)) for rowid, sent in marks)
    for rowid in rowids:
        sent = next((when for last, when in ordered if rowid <= last), None)
        if sent is not None:
            SCORE_LATENCY.observe(max(0.0, now - sent))
