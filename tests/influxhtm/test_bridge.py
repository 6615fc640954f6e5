"""The bridge service against the real RabbitMQ and InfluxDB: scored rows published on a
results exchange end up in InfluxDB as a sensor plus the results of the engine's model."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from influxhtm.bridge import ResultsBridge
from nta_utils.message_bus import MessageBus

pytestmark = [pytest.mark.influx, pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[2]
TS0 = 1_717_200_000  # 2024-06-01 00:00:00 UTC


def _batch(uid: str, name: str, resource: str, rowids: range) -> dict:
    return {
        "metric": {"uid": uid, "name": name, "description": f"Custom metric {name}",
                   "resource": resource, "location": "", "datasource": "custom",
                   "spec": {"metric": name, "unit": "Percent"}},
        "results": [{"rowid": r, "ts": TS0 + 300 * r, "value": 10.0 + r,
                     "rawAnomaly": (r % 4) / 4, "anomaly": 0.5 + r / 1000,
                     "multiStepBestPredictions": {"1": 11.0 + r} if r % 2 else None}
                    for r in rowids],
    }


def _publish(bus: MessageBus, exchange: str, message: dict, headers=None) -> None:
    bus.publish(exchange, "", zlib.compress(json.dumps(message).encode()), headers=headers)


def test_bridge_writes_every_scored_row(engine_env, influx_client):
    exchange = f"{engine_env.prefix}.influxhtm.results"
    with MessageBus() as bus:
        bus.declare_fanout_exchange(exchange)
        bridge = ResultsBridge(influx_client, exchange=exchange, bus=bus)
        bridge.setUp()
        _publish(bus, exchange, _batch("uid-1", "cpu.percent", "web 1", range(1, 6)))
        _publish(bus, exchange, {"method": "defineModel", "modelId": "uid-1", "commandId": "c",
                                 "status": 0, "errorMessage": None},
                 headers={"dataType": "model-cmd-result"})
        bus.publish(exchange, "", b"not zlib at all")
        _publish(bus, exchange, _batch("uid-1", "cpu.percent", "web 1", range(6, 9)))
        _publish(bus, exchange, _batch("uid-2", "it's \"odd\"", "", range(1, 3)))
        # A redelivered batch (at-least-once) is stored once.
        _publish(bus, exchange, _batch("uid-2", "it's \"odd\"", "", range(1, 3)))
        assert bridge.run(maxMessages=6, idleTimeout=10) == 6
        assert bus.message_count(bridge.queue) == 0
        bus.delete_queue(bridge.queue)
        bus.delete_exchange(exchange)

    cpu = influx_client.getSensor("cpu.percent", "web 1")
    data = cpu.getData()
    assert [p["time"] for p in data] == [datetime.fromtimestamp(TS0 + 300 * r, UTC)
                                         for r in range(1, 9)]
    assert [p["value"] for p in data] == [10.0 + r for r in range(1, 9)]
    model = cpu.getHtmModel()
    assert model.getId() == "uid-1"
    assert model.getParams()["engine"]["spec"] == {"metric": "cpu.percent", "unit": "Percent"}
    results = model.getResults()
    assert [(r.anomalyScore, r.anomalyLikelihood, r.prediction) for r in results] == [
        ((r % 4) / 4, 0.5 + r / 1000, 11.0 + r if r % 2 else None) for r in range(1, 9)]
    combined = cpu.getCombinedSensorData()
    assert combined.column("anomalyLikelihood") == [0.5 + r / 1000 for r in range(1, 9)]

    odd = influx_client.getSensor("it's \"odd\"", "htmengine")
    assert len(odd.getData()) == 2
    assert len(odd.getHtmModel("uid-2").getResults()) == 2


def test_bridge_command_line_stops_on_idle(engine_env, influx_database, influx_address):
    exchange = f"{engine_env.prefix}.influxhtm.cli"
    queue = f"{engine_env.prefix}.influxhtm.cli.queue"
    host, port = influx_address
    with MessageBus() as bus:
        bus.declare_fanout_exchange(exchange)
        bus.declare_queue(queue)
        bus.bind_queue(queue, exchange)
        _publish(bus, exchange, _batch("uid-9", "mem.used", "db", range(1, 4)))
    env = {**engine_env.subprocess_env(), "INFLUX_HOST": host, "INFLUX_PORT": str(port)}
    done = subprocess.run(
        [sys.executable, "-m", "influxhtm.bridge", "--database", influx_database,
         "--exchange", exchange, "--queue", queue, "--idle-timeout", "1"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Bridge stopped after 1 messages" in done.stderr
    with MessageBus() as bus:
        bus.delete_queue(queue)
        bus.delete_exchange(exchange)
    from influxhtm import InfluxHtmClient

    sensor = InfluxHtmClient(influx_database, host=host, port=port).getSensor("mem.used", "db")
    assert [p["value"] for p in sensor.getData()] == [11.0, 12.0, 13.0]
