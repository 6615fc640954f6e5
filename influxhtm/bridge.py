"""Bridge service: copy every scored row the engine publishes on its results exchange into
InfluxDB, so engine metrics and their anomaly scores can be charted in Grafana or Chronograf.

Each metric becomes an influxhtm sensor (measurement = metric name, component = the metric's
resource, or "htmengine" when it has none) and its scores the results of the HTM model whose
id is the metric uid: `anomalyScore` = raw anomaly score, `anomalyLikelihood` = the engine's
anomaly score (its likelihood), `prediction` when the engine sent one. Delivery is
at-least-once; writing a row twice stores it once (same series and time).

Run it with `python -m influxhtm.bridge --database htmengine` (INFLUX_* variables pick the
server; the exchange comes from application.conf [metric_streamer] results_exchange_name).
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time as clock
from collections.abc import Mapping
from typing import Any

from htmengine.config import app_config
from htmengine.exceptions import InvalidInputError
from htmengine.pipeline.results_serialization import deserializeModelResult
from influxhtm.client import InfluxHtmClient
from influxhtm.errors import InfluxConnectionError
from influxhtm.model import HtmSensorModel
from nta_utils.errors import BusConnectionError
from nta_utils.message_bus import Message, MessageBus

_log = logging.getLogger(__name__)

DEFAULT_COMPONENT = "htmengine"
QUEUE_SUFFIX = ".influxhtm"
COMMAND_RESULT_TYPE = "model-cmd-result"
RETRY_DELAY = 5.0


def defaultExchange() -> str:
    """The engine's results exchange named in application.conf."""
    return str(app_config().get("metric_streamer", "results_exchange_name"))


class ResultsBridge:
    """Consumes the results exchange through its own durable queue and writes to InfluxDB."""

    def __init__(self, client: InfluxHtmClient, exchange: str | None = None,
                 queue: str | None = None, bus: MessageBus | None = None) -> None:
        self._client = client
        self._exchange = exchange or defaultExchange()
        self._queue = queue or self._exchange + QUEUE_SUFFIX
        self._bus = bus
        self._ownsBus = bus is None
        self._registered: set[tuple[str, str, str]] = set()

    @property
    def queue(self) -> str:
        """The durable queue bound to the results exchange."""
        return self._queue

    def _getBus(self) -> MessageBus:
        if self._bus is None:
            self._bus = MessageBus()
        return self._bus

    def setUp(self) -> None:
        """Declare the fanout exchange and this bridge's durable queue, and bind them."""
        bus = self._getBus()
        bus.declare_fanout_exchange(self._exchange, durable=True)
        bus.declare_queue(self._queue, durable=True)
        bus.bind_queue(self._queue, self._exchange)

    def close(self) -> None:
        """Close the message bus if this bridge opened it."""
        if self._ownsBus and self._bus is not None:
            self._bus.close()
            self._bus = None

    # ----------------------------------------------------------------------- writing

    def writeBatch(self, batch: Mapping[str, Any]) -> int:
        """Write one decoded results message; returns the number of rows written."""
        metric = batch.get("metric")
        rows = batch.get("results")
        if not isinstance(metric, Mapping) or not isinstance(rows, list):
            raise InvalidInputError("results message needs 'metric' and 'results'")
        name, uid = metric.get("name"), metric.get("uid")
        if not name or not uid:
            raise InvalidInputError(f"results message metric {dict(metric)!r} lacks name/uid")
        sensor = self._client.createSensor(str(name), str(metric.get("resource")
                                                          or DEFAULT_COMPONENT))
        model = HtmSensorModel(sensor, str(uid))
        points, results = [], []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping) or row.get("ts") is None:
                raise InvalidInputError(f"results row {index} {row!r} lacks 'ts'")
            if row.get("value") is not None:
                points.append({"time": row["ts"], "value": row["value"]})
            if row.get("rawAnomaly") is not None:
                result: dict[str, Any] = {"anomalyScore": row["rawAnomaly"],
                                          "anomalyLikelihood": row.get("anomaly")}
                predictions = row.get("multiStepBestPredictions") or {}
                if isinstance(predictions, Mapping) and predictions:
                    result["prediction"] = next(iter(predictions.values()))
                results.append((row["ts"], result))
        sensor.write(points)
        model.writeResults(results)
        key = (sensor.getMeasurement(), sensor.getComponent(), model.getId())
        if key not in self._registered:
            model.setParams({"engine": {"uid": uid, "spec": metric.get("spec") or {},
                                        "datasource": metric.get("datasource")}})
            self._registered.add(key)
        return len(rows)

    def handleMessage(self, message: Message) -> int:
        """Write the rows of one message (command results are skipped); returns rows
        written. Malformed messages raise InvalidInputError."""
        if (message.headers or {}).get("dataType") == COMMAND_RESULT_TYPE:
            return 0
        return self.writeBatch(deserializeModelResult(message.body))

    # ----------------------------------------------------------------------- service

    def run(self, maxMessages: int | None = None, idleTimeout: float | None = None,
            stopEvent: threading.Event | None = None) -> int:
        """Consume until `maxMessages` were handled, `idleTimeout` seconds pass without a
        message, or `stopEvent` is set; returns messages handled. A message is acknowledged
        after its rows are in InfluxDB; while InfluxDB is unreachable it is requeued and the
        bridge retries. Malformed messages are logged and dropped."""
        stopEvent = stopEvent or threading.Event()
        self.setUp()
        handled = 0
        pollTimeout = 1.0 if idleTimeout is None else min(1.0, idleTimeout)
        idleSince = clock.monotonic()
        while not stopEvent.is_set():
            bus = self._getBus()
            try:
                for message in bus.consume(self._queue, prefetch=10,
                                           inactivity_timeout=pollTimeout):
                    if stopEvent.is_set():
                        if message is not None:
                            bus.nack(message.delivery_tag, requeue=True)
                        return handled
                    if message is None:
                        if (idleTimeout is not None
                                and clock.monotonic() - idleSince >= idleTimeout):
                            return handled
                        continue
                    idleSince = clock.monotonic()
                    if not self._handleOne(bus, message, stopEvent):
                        return handled
                    handled += 1
                    if maxMessages is not None and handled >= maxMessages:
                        return handled
            except BusConnectionError:
                _log.warning("Lost the message bus; reconnecting", exc_info=True)
                stopEvent.wait(1.0)
        return handled

    def _handleOne(self, bus: MessageBus, message: Message,
                   stopEvent: threading.Event) -> bool:
        """Handle and acknowledge one message; False if stopped before it could be written
        (it is then requeued)."""
        while True:
            try:
                rows = self.handleMessage(message)
            except InvalidInputError as exc:
                _log.error("Dropping malformed results message: %s", exc)
                bus.ack(message.delivery_tag)
                return True
            except InfluxConnectionError:
                _log.warning("InfluxDB unreachable; retrying in %s s", RETRY_DELAY,
                             exc_info=True)
                if stopEvent.wait(RETRY_DELAY):
                    bus.nack(message.delivery_tag, requeue=True)
                    return False
                continue
            _log.debug("Wrote %d rows to InfluxDB", rows)
            bus.ack(message.delivery_tag)
            return True


def main(argv: list[str] | None = None) -> int:
    """Command line entry point of the bridge service."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=None,
                        help="InfluxDB database (default: $INFLUX_DATABASE or 'htmengine')")
    parser.add_argument("--exchange", default=None, help="results exchange (default: config)")
    parser.add_argument("--queue", default=None, help="durable queue (default: <exchange>"
                        f"{QUEUE_SUFFIX})")
    parser.add_argument("--max-messages", type=int, default=None)
    parser.add_argument("--idle-timeout", type=float, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    database = args.database or os.environ.get("INFLUX_DATABASE") or "htmengine"
    bridge = ResultsBridge(InfluxHtmClient(database), exchange=args.exchange, queue=args.queue)
    try:
        handled = bridge.run(maxMessages=args.max_messages, idleTimeout=args.idle_timeout)
    except KeyboardInterrupt:
        handled = 0
    finally:
        bridge.close()
    _log.info("Bridge stopped after %d messages", handled)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
