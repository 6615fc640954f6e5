"""Poison messages on the model swapper's queues, through the running engine (listener, storer,
scheduler with a slot, anomaly service) on the real broker and database: an undecodable
scheduler notification and an undecodable message on a model's input queue go to their
dead-letter queues with the reason, are logged once, and the samples behind them are scored."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from runtime_test_support import unique_name, wait_for

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.repository import engineFactory, queries
from htmengine.repository.queries import MetricStatus
from nta_utils.dead_letter import HEADER_QUEUE, HEADER_REASON, dead_letter_queue_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUM_ROWS = 30
T0 = 1430000000
POISON = b"[" * 100000 + b"]" * 100000            # RecursionError in json.loads


def test_poison_notification_and_input_messages_are_dead_lettered(
        engine_env, migrated_db, start_service, custom_queue, bus) -> None:
    engine: sa.Engine = engineFactory()
    name = unique_name("test.poison")
    with ModelSwapperInterface() as swapper:
        notifications = swapper.schedulerNotificationQueueName
        swapper.initSchedulerNotification()
        bus.purge_queue(notifications)     # models of earlier tests: not scheduled here
        uid = createDatasourceAdapter("custom", engine=engine).monitorMetric(
            {"datasource": "custom", "metricSpec": {"metric": name},
             "modelParams": {"min": 0, "max": 100}})
        inputQueue = swapper.getModelInputQueueName(uid)
    dlqs = {queue: dead_letter_queue_name(queue) for queue in (notifications, inputQueue)}
    for dlq in dlqs.values():
        bus.declare_queue(dlq, durable=True)
        bus.purge_queue(dlq)
    bus.publish_to_queue(notifications, POISON, persistent=True)
    bus.publish_to_queue(inputQueue, b"batch-1\n" + POISON, persistent=True)

    services = [start_service("htmengine.model_swapper.model_scheduler_service",
                              "--num-slots", "1"),
                start_service("htmengine.runtime.anomaly_service"),
                start_service("htmengine.runtime.metric_storer"),
                start_service("htmengine.runtime.metric_listener")]

    def alive() -> None:
        for service in services:
            assert service.process.poll() is None, f"{service.module}:\n{service.output()}"

    def connected():
        alive()
        try:
            return socket.create_connection(("127.0.0.1", engine_env.plaintext_port), 0.5)
        except OSError:
            return None

    with wait_for(connected, 60, what="the metric listener") as sock:
        sock.sendall(b"".join(f"{name} {n % 7 * 10} {T0 + 300 * n}\n".encode()
                              for n in range(NUM_ROWS)))

    def allScored() -> bool:
        alive()
        with engine.connect() as conn:
            assert queries.getMetric(conn, uid).status != MetricStatus.ERROR
            return queries.getProcessedMetricDataCount(conn, uid) == NUM_ROWS

    wait_for(allScored, 180, interval=0.5, what=f"{NUM_ROWS} scored rows")
    for queue, dlq in dlqs.items():
        wait_for(lambda dlq=dlq: bus.message_count(dlq) == 1, 20, what=f"a letter in {dlq}")
        letter = bus.get(dlq)
        assert letter.body.endswith(POISON)
        assert letter.headers[HEADER_QUEUE] == queue
        assert "than the limit" in letter.headers[HEADER_REASON]
        bus.nack(letter.delivery_tag, requeue=True)
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE
    scheduler = services[0].output()
    for queue in dlqs:
        logged = [line for line in scheduler.splitlines()
                  if "Dead-lettered" in line and f"of queue {queue} " in line]
        assert len(logged) == 1, scheduler
        assert "200000 bytes starting b'[[[[" in logged[0] or "b'batch-1\\n[[[[" in logged[0]
    assert "RecursionError" not in scheduler

    # requeued, the notification is dead-lettered again by the running scheduler
    done = subprocess.run([str(Path(sys.executable).parent / "htmengine"), "dlq", "requeue",
                           "--all", "--queue", notifications],
                          env=engine_env.subprocess_env(), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "requeued 1 dead letter" in done.stdout, done.stderr
    wait_for(lambda: services[0].output().count(f"of queue {notifications} ") == 2, 30,
             what="the requeued letter dead-lettered again")
    assert bus.message_count(dlqs[notifications]) == 1
    for service in services:
        assert service.stop() == 0, service.output()
    for dlq in dlqs.values():
        bus.delete_queue(dlq)
