"""``htmengine tail``: follow the model results exchange and print each scored row (and model
command results) as it arrives, through a queue of its own that the broker deletes as soon as
the command stops."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from htmengine.config import app_config
from htmengine.pipeline.results_serialization import deserializeModelResult
from nta_utils.message_bus import MessageBus


def format_result(metric: str, result: dict[str, Any]) -> str:
    """One line per scored row: time, metric, row id, value, likelihood, raw score."""
    ts = datetime.fromtimestamp(result["ts"], UTC).strftime("%Y-%m-%d %H:%M:%S")
    likelihood = result.get("anomaly")
    raw = result.get("rawAnomaly")
    return (f"{ts}  {metric}  row {result['rowid']}  value {result['value']:g}  "
            f"likelihood {'-' if likelihood is None else f'{likelihood:.6f}'}  "
            f"raw {'-' if raw is None else f'{raw:.3f}'}")


def _lines(headers: dict[str, Any] | None, body: bytes, metric: str | None) -> list[str]:
    message = deserializeModelResult(body)
    if (headers or {}).get("dataType") == "model-cmd-result":
        if metric is None:
            state = "ok" if message.get("status") == 0 else f"failed: {message.get('errorMessage')}"
            return [f"model {message.get('modelId')}: {message.get('method')} {state}"]
        return []
    name = message["metric"]["name"]
    if metric is not None and name != metric:
        return []
    return [format_result(name, result) for result in message["results"]]


def follow_results(metric: str | None, idle_timeout: float | None = None,
                   on_ready: Callable[[], None] = lambda: None) -> Iterator[str]:
    """Lines for every result on the exchange (only `metric`'s if given), until the caller
    stops iterating or `idle_timeout` seconds pass without a message."""
    exchange = app_config().get("metric_streamer", "results_exchange_name")
    queue = f"htmengine-tail.{uuid.uuid4().hex[:12]}"
    with MessageBus() as bus:
        bus.declare_fanout_exchange(exchange, durable=True)
        bus.declare_queue(queue, durable=False, auto_delete=True)
        try:
            bus.bind_queue(queue, exchange)
            on_ready()
            for message in bus.consume(queue, prefetch=100, inactivity_timeout=idle_timeout):
                if message is None:
                    return
                lines = _lines(message.headers, message.body, metric)
                bus.ack(message.delivery_tag)
                yield from lines
        finally:
            bus.delete_queue(queue)
