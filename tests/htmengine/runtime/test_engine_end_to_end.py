"""The whole engine as real processes: graphite plaintext -> listener -> storer -> model
scheduler (HTM models) -> anomaly service -> scored rows and the results exchange."""

from __future__ import annotations

import os
import socket
import time

import pytest
import sqlalchemy as sa
from runtime_test_support import unique_name, wait_for

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.results_serialization import deserializeModelResult
from htmengine.repository import engineFactory, queries
from htmengine.repository.queries import MetricStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUM_ROWS = 150
T0 = 1430000000


def test_graphite_samples_are_scored_and_published(engine_env, migrated_db, start_service,
                                                   custom_queue, bus) -> None:
    engine: sa.Engine = engineFactory()
    exchange = os.environ[
        "_NTA_UTILS_CONFIG__APPLICATION__METRIC_STREAMER__RESULTS_EXCHANGE_NAME"]
    probe = f"{exchange}.e2e.probe"
    bus.declare_fanout_exchange(exchange, durable=True)
    bus.declare_queue(probe, durable=False)
    bus.purge_queue(probe)
    bus.bind_queue(probe, exchange)
    # Models of earlier tests in this session have queued input; do not schedule them here.
    with ModelSwapperInterface() as swapper:
        swapper.initSchedulerNotification()
        bus.purge_queue(swapper.schedulerNotificationQueueName)

    services = [start_service("htmengine.model_swapper.model_scheduler_service",
                              "--num-slots", "1"),
                start_service("htmengine.runtime.anomaly_service"),
                start_service("htmengine.runtime.metric_storer"),
                start_service("htmengine.runtime.metric_listener")]
    name = unique_name("test.e2e")
    uid = createDatasourceAdapter("custom", engine=engine).monitorMetric(
        {"datasource": "custom", "metricSpec": {"metric": name},
         "modelParams": {"min": 0, "max": 100}})

    def alive() -> None:
        for service in services:
            assert service.process.poll() is None, f"{service.module}:\n{service.output()}"

    def connected():
        alive()
        try:
            return socket.create_connection(("127.0.0.1", engine_env.plaintext_port), 0.5)
        except OSError:
            return None

    sock = wait_for(connected, 60, what="the metric listener")
    with sock:
        for n in range(NUM_ROWS):
            sock.sendall(f"{name} {50 + 40 * ((n % 12) < 6)} {T0 + 300 * n}\n".encode())
            if n % 50 == 49:
                time.sleep(0.05)

    def allScored() -> bool:
        alive()
        with engine.connect() as conn:
            metric = queries.getMetric(conn, uid)
            assert metric.status != MetricStatus.ERROR, f"model failed: {metric.message}"
            return queries.getProcessedMetricDataCount(conn, uid) == NUM_ROWS

    wait_for(allScored, 240, interval=0.5, what=f"{NUM_ROWS} scored rows")
    with engine.connect() as conn:
        metric = queries.getMetric(conn, uid)
        rows = list(queries.getMetricData(conn, uid))
    assert metric.status == MetricStatus.ACTIVE
    assert [r.rowid for r in rows] == list(range(1, NUM_ROWS + 1))
    assert all(0.0 <= r.raw_anomaly_score <= 1.0 for r in rows)
    assert rows[0].raw_anomaly_score == 1.0          # nothing is predicted at first
    assert all(r.anomaly_score == 0.0 for r in rows[:100])
    assert all(r.anomaly_score is not None for r in rows)

    received: dict[int, dict] = {}

    def published() -> bool:
        while (message := bus.get(probe)) is not None:
            bus.ack(message.delivery_tag)
            body = deserializeModelResult(message.body)
            for result in body.get("results", []):
                received[result["rowid"]] = result
        return len(received) >= NUM_ROWS

    wait_for(published, 30, what="published results")
    assert [(received[r.rowid]["rawAnomaly"], received[r.rowid]["anomaly"]) for r in rows] == [
        (r.raw_anomaly_score, r.anomaly_score) for r in rows]
    for service in services:
        assert service.stop() == 0, service.output()
    bus.delete_queue(probe)
