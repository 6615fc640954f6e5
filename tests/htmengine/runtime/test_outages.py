"""Outages read like outages, against a MariaDB server and a RabbitMQ node this test starts
for itself on other ports (the shared servers are never stopped): while one is down, each
service logs one warning when it loses it and one, with the duration, when it is back; no
traceback; the storer waits for the database instead of exiting; nothing sent is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa
from runtime_test_support import REPO_ROOT, ServiceProcess, unique_name, wait_for

from bench.private_servers import PrivateMariaDB, PrivateRabbitMQ, available
from htmengine.pipeline.plaintext import encodeBatchMessage
from htmengine.repository import queries

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="needs mariadbd and rabbitmq-server")]

OUTAGE_SECONDS = 8
T0 = 1430000000


def _override(configFile: str, section: str, option: str) -> str:
    return f"_NTA_UTILS_CONFIG__{configFile.upper()}__{section.upper()}__{option.upper()}"


@pytest.fixture()
def private_db(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    server = PrivateMariaDB(tmp_path / "mariadb")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def private_broker(tmp_path: Path) -> Iterator[PrivateRabbitMQ]:
    server = PrivateRabbitMQ(tmp_path / "rabbitmq")
    server.start()
    yield server
    server.stop()


def _lines(name: str, first: int, count: int) -> list[str]:
    return [f"{name} {n % 10} {T0 + 300 * n}" for n in range(first, first + count)]


def _storedRows(engine: sa.Engine, name: str) -> int:
    with engine.connect() as conn:
        try:
            uid = queries.getCustomMetricByName(conn, name).uid
        except Exception:  # noqa: BLE001 - not created yet
            return 0
        return queries.getMetricDataCount(conn, uid)


def _outageLines(log: str, what: str) -> tuple[list[str], list[str]]:
    lines = log.splitlines()
    return ([line for line in lines if f"Lost {what}" in line],
            [line for line in lines if f"{what} is back after" in line])


def _publishLines(port: int, queue: str, lines: list[str]) -> None:
    """One persistent, confirmed graphite batch message on the listener's queue."""
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.confirm_delivery()
    channel.basic_publish("", queue, encodeBatchMessage(lines),
                          pika.BasicProperties(delivery_mode=2))
    connection.close()


def _stopAfterOneOutageEachWay(service: ServiceProcess, what: str) -> None:
    """The service logged losing `what` once and its return once (WARNINGs), nothing worse;
    then it stops cleanly."""
    log = service.output()
    lost, back = _outageLines(log, what)
    assert len(lost) == 1 and "WARNING" in lost[0], log
    assert len(back) == 1 and "WARNING" in back[0], log
    assert "Traceback" not in log and " ERROR " not in log, log
    assert service.stop() == 0, service.output()


def test_storer_waits_for_the_database_and_logs_the_outage_once(
        engine_env, start_service, custom_queue, bus, private_db) -> None:
    env = {_override("application", "repository", "port"): str(private_db.port)}
    subprocess.run([sys.executable, str(REPO_ROOT / "repository" / "migrate.py")], check=True,
                   env={**engine_env.subprocess_env(), **env}, cwd=REPO_ROOT, timeout=300,
                   capture_output=True)
    engine = sa.create_engine(
        f"mysql+pymysql://root@127.0.0.1:{private_db.port}/{engine_env.db_name}",
        pool_pre_ping=True)
    storer = start_service("htmengine.runtime.metric_storer", extraEnv=env)
    name = unique_name("test.outage.db")
    bus.publish_to_queue(custom_queue, encodeBatchMessage(_lines(name, 0, 10)), persistent=True)
    wait_for(lambda: _storedRows(engine, name) == 10, 60, what="10 rows stored")

    private_db.stop()
    engine.dispose()
    bus.publish_to_queue(custom_queue, encodeBatchMessage(_lines(name, 10, 10)), persistent=True)
    deadline = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < deadline:
        assert storer.process.poll() is None, storer.output()
        time.sleep(0.5)
    private_db.start()
    wait_for(lambda: _storedRows(engine, name) == 20, 60, what="20 rows stored after the outage")
    assert storer.process.poll() is None, storer.output()

    log = storer.output()
    lost, back = _outageLines(log, "the database")
    assert len(lost) == 1 and "WARNING" in lost[0], log
    assert len(back) == 1 and "WARNING" in back[0], log
    seconds = float(back[0].split("is back after ")[1].split(" s")[0])
    assert OUTAGE_SECONDS - 1 <= seconds <= OUTAGE_SECONDS + 30
    assert "Traceback" not in log and " ERROR " not in log, log
    assert storer.stop() == 0
    engine.dispose()


def test_services_log_a_broker_outage_once_and_lose_nothing(
        engine_env, migrated_db, start_service, sql_engine, private_broker) -> None:
    env = {_override("rabbitmq", "connection", "port"): str(private_broker.port),
           _override("rabbitmq", "connection", "virtual_host"): "/"}
    queue = engine_env.env[_override("application", "metric_listener", "queue_name")]
    services = [start_service("htmengine.runtime.metric_storer", extraEnv=env),
                start_service("htmengine.runtime.anomaly_service", extraEnv=env)]
    name = unique_name("test.outage.mq")

    def publish(first: int) -> None:
        _publishLines(private_broker.port, queue, _lines(name, first, 10))

    def alive() -> None:
        for service in services:
            assert service.process.poll() is None, service.output()

    for service in services:
        wait_for(lambda service=service: "Consuming" in service.output(), 60,
                 what=f"{service.module} consuming")
    publish(0)
    wait_for(lambda: alive() or _storedRows(sql_engine, name) == 10, 60, what="10 rows stored")

    private_broker.stop()
    deadline = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < deadline:
        alive()
        time.sleep(0.5)
    private_broker.start()
    publish(10)
    wait_for(lambda: alive() or _storedRows(sql_engine, name) == 20, 90,
             what="20 rows stored after the outage")
    what = f"the broker amqp://guest@127.0.0.1:{private_broker.port}//"
    for service in services:
        wait_for(lambda service=service: len(_outageLines(service.output(), what)[1]) == 1,
                 60, what=f"{service.module} to log the broker back")
        _stopAfterOneOutageEachWay(service, what)


def test_services_started_during_a_broker_outage_wait_for_the_broker(
        engine_env, migrated_db, start_service, sql_engine, private_broker) -> None:
    """A storer and an anomaly service started while the broker is down (a host booting with
    RabbitMQ still starting) wait for it instead of exiting, then consume what arrives."""
    env = {_override("rabbitmq", "connection", "port"): str(private_broker.port),
           _override("rabbitmq", "connection", "virtual_host"): "/"}
    queue = engine_env.env[_override("application", "metric_listener", "queue_name")]
    name = unique_name("test.outage.start")
    private_broker.stop()
    services = [start_service("htmengine.runtime.metric_storer", extraEnv=env),
                start_service("htmengine.runtime.anomaly_service", extraEnv=env)]
    what = f"the broker amqp://guest@127.0.0.1:{private_broker.port}//"
    for service in services:
        wait_for(lambda service=service: _outageLines(service.output(), what)[0], 60,
                 what=f"{service.module} to log the broker lost")
    deadline = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < deadline:
        for service in services:
            assert service.process.poll() is None, service.output()
        time.sleep(0.5)
    private_broker.start()
    for service in services:
        wait_for(lambda service=service: "Consuming" in service.output(), 90,
                 what=f"{service.module} consuming after the broker came back")
    _publishLines(private_broker.port, queue, _lines(name, 0, 10))
    wait_for(lambda: _storedRows(sql_engine, name) == 10, 60, what="10 rows stored")
    for service in services:
        _stopAfterOneOutageEachWay(service, what)
