"""The alert service loop: its own durable queue bound to the results exchange; for each
inference results message, every row whose likelihood reaches the threshold is decided once
(`htmengine.repository.alert_queries.claim_alert`: not before, not again, not within the
metric's interval) and, if so, handed to the sender; the message is acked after the
decisions are committed. Scoring never waits for it: the anomaly service only publishes to
the fanout exchange."""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa

from htmengine import engine_metrics
from htmengine.alerts.delivery import AlertSender
from htmengine.alerts.payload import alert_payload
from htmengine.alerts.settings import AlertSettings
from htmengine.exceptions import InvalidInputError
from htmengine.pipeline.results_serialization import deserializeModelResult
from htmengine.repository.alert_queries import AlertDecision, claim_alert
from htmengine.runtime.service_support import StopFlag
from nta_utils.errors import BusConnectionError

_log = logging.getLogger("htmengine.alerts.service")


class AlertService:
    """Turns results exchange messages into webhook deliveries."""

    def __init__(self, settings: AlertSettings, engine: sa.Engine, sender: AlertSender,
                 clock: Any = time.time) -> None:
        self.settings = settings
        self._engine = engine
        self._sender = sender
        self._clock = clock

    def process(self, body: bytes) -> list[dict[str, Any]]:
        """Decide the alerts of one exchange message and submit them; returns the payloads
        submitted."""
        try:
            message = deserializeModelResult(body)
        except InvalidInputError as error:
            _log.warning("Skipping a results message that cannot be decoded: %s", error)
            return []
        results = message.get("results")
        metric = message.get("metric")
        if not results or not isinstance(metric, dict):
            return []   # command results
        submitted = []
        for result in results:
            likelihood = result.get("anomaly")
            if likelihood is None or float(likelihood) < self.settings.threshold:
                continue
            with self._engine.connect() as conn:
                decision = claim_alert(conn, metric["uid"], int(result["rowid"]),
                                       self._clock(), self.settings.min_interval_seconds)
            if decision is not AlertDecision.SEND:
                engine_metrics.ALERTS.labels(decision.value).inc()
                _log.info("No alert for metric=%s rowid=%s likelihood=%s: %s",
                          metric.get("name"), result["rowid"], likelihood, decision.value)
                continue
            payload = alert_payload(metric, result, self.settings.threshold,
                                    self.settings.public_url)
            for future in self._sender.submit(payload):
                future.add_done_callback(_count_delivery)
            submitted.append(payload)
        return submitted

    def run(self, bus: Any, stop: StopFlag) -> None:
        """Follow the results exchange through the alert queue until `stop` is set."""
        bus.declare_fanout_exchange(self.settings.results_exchange, durable=True)
        bus.declare_queue(self.settings.queue_name, durable=True)
        bus.bind_queue(self.settings.queue_name, self.settings.results_exchange)
        _log.info("Following %s through %s; alerting %s at likelihood >= %s",
                  self.settings.results_exchange, self.settings.queue_name,
                  list(self.settings.urls) or "nobody (no [alerts] urls)",
                  self.settings.threshold)
        while not stop.isSet:
            try:
                for message in bus.consume(self.settings.queue_name, prefetch=50,
                                           inactivity_timeout=0.5):
                    if message is not None:
                        if self.settings.urls:
                            self.process(message.body)
                        bus.ack(message.delivery_tag)
                    if stop.isSet:
                        break
            except BusConnectionError as error:
                _log.warning("Lost the broker connection (%r); reconnecting", error)
                time.sleep(1.0)


def _count_delivery(future: Any) -> None:
    engine_metrics.ALERTS.labels("delivered" if future.result() else "failed").inc()
