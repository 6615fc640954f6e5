"""The metric storer's service loop (`MetricStorer.run`) on the in-memory bus: batches acked only
once stored, undecodable and poison messages dead-lettered while the rest flows, model input
streamed to the model's queue, a lost broker connection survived without storing twice.

The database is the session's real MariaDB; no broker is used (RabbitMQ's address is pointed at
a port that refuses connections). The broker-backed service test is in test_metric_storer.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
import stub_bus_support
from runtime_test_support import unique_name, wait_for
from stub_bus_support import service_thread, swapper_factory

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.messages import ModelInputRow
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.plaintext import encodeBatchMessage
from htmengine.repository import queries
from htmengine.repository.queries import MetricStatus
from htmengine.runtime.metric_storer import MetricStorer
from nta_utils.dead_letter import HEADER_ATTEMPTS, HEADER_QUEUE, HEADER_REASON
from nta_utils.stub_bus import StubBroker, StubBus

# the shared fixture: the session's database, RabbitMQ's port refusing connections
engine = stub_bus_support.engine

T0 = 1430000000
QUEUE = "stubtest.metric.custom.data"
DLQ = "stubtest.dlq.metric.custom.data"


@pytest.fixture()
def broker() -> StubBroker:
    broker = StubBroker()
    StubBus(broker).declare_queue(QUEUE)
    return broker


class _PoisonAdapter:
    """The real custom adapter, except that metrics named ``poison.*`` raise an error no
    handler expects (as a bug triggered by one message would)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def getOrCreateMetric(self, name: str) -> str:
        if name.startswith("poison."):
            raise RuntimeError(f"bug triggered by {name}")
        return str(self._real.getOrCreateMetric(name))

    def activateModel(self, uid: str) -> bool:
        return bool(self._real.activateModel(uid))


def _publish(broker: StubBroker, name: str, values: list[float], start: int = 0) -> None:
    lines = [f"{name} {v} {T0 + 300 * (start + i)}" for i, v in enumerate(values)]
    StubBus(broker).publish_to_queue(QUEUE, encodeBatchMessage(lines, "tcp:10.0.0.9:5000"))


def _run_storer(engine: sa.Engine, broker: StubBroker, batch_size: int = 10,
                max_attempts: int = 3) -> Any:
    """The storer's `run` on a thread, with its own connection for the loop and the swapper."""
    def run(stop: Any) -> None:
        bus = StubBus(broker)
        with ModelSwapperInterface(bus) as swapper:
            adapter = createDatasourceAdapter("custom", engine=engine, chunkSize=100,
                                              swapperFactory=swapper_factory(broker))
            storer = MetricStorer(engine, swapper, _PoisonAdapter(adapter), chunkSize=100)
            storer.run(bus, QUEUE, batch_size, stop, maxAttempts=max_attempts)
    return service_thread(run)


def _rows(engine: sa.Engine, name: str) -> list[float]:
    with engine.connect() as conn:
        uid = queries.getCustomMetricByName(conn, name).uid
        return [r.metric_value for r in queries.getMetricData(conn, uid)]


def test_batches_are_stored_then_acked(engine: sa.Engine, broker: StubBroker) -> None:
    names = [unique_name(), unique_name()]
    for i in range(5):
        _publish(broker, names[i % 2], [float(i)], start=i)
    with _run_storer(engine, broker):
        assert broker.join(QUEUE, timeout=20)
    assert _rows(engine, names[0]) == [0.0, 2.0, 4.0]
    assert _rows(engine, names[1]) == [1.0, 3.0]
    assert broker.peek(DLQ) == []


def test_undecodable_and_poison_messages_are_dead_lettered_and_the_rest_flows(
        engine: sa.Engine, broker: StubBroker) -> None:
    good = unique_name()
    _publish(broker, good, [1.0])
    StubBus(broker).publish_to_queue(QUEUE, b"\xff not json")
    _publish(broker, "poison." + unique_name(), [2.0])
    _publish(broker, good, [3.0], start=1)
    with _run_storer(engine, broker, max_attempts=2):
        assert broker.join(QUEUE, timeout=20)
    assert _rows(engine, good) == [1.0, 3.0]
    letters = broker.peek(DLQ)
    assert [m.body for m in letters][0] == b"\xff not json"
    assert all(m.headers[HEADER_QUEUE] == QUEUE for m in letters)
    assert "RuntimeError('bug triggered by poison." in letters[1].headers[HEADER_REASON]
    assert letters[1].headers[HEADER_ATTEMPTS] == 2
    assert len(letters) == 2


def test_rows_of_a_monitored_metric_reach_its_model_queue(engine: sa.Engine,
                                                          broker: StubBroker) -> None:
    name = unique_name()
    adapter = createDatasourceAdapter("custom", engine=engine, chunkSize=100,
                                      swapperFactory=swapper_factory(broker))
    uid = adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                 "modelParams": {"min": 0, "max": 100}})
    _publish(broker, name, [5.0, 6.0, 7.0])
    with _run_storer(engine, broker):
        assert broker.join(QUEUE, timeout=20)
    with ModelSwapperInterface(StubBus(broker)) as swapper:
        batches = []
        while (batch := swapper.getRequestBatch(uid)) is not None:
            batch.ack()
            batches.append(batch.objects)
    rows = [item for objects in batches for item in objects if isinstance(item, ModelInputRow)]
    assert [(r.rowID, r.data[1]) for r in rows] == [(1, 5.0), (2, 6.0), (3, 7.0)]
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.CREATE_PENDING


def test_a_lost_connection_is_survived_without_storing_twice(engine: sa.Engine,
                                                             broker: StubBroker) -> None:
    name = unique_name()
    _publish(broker, name, [1.0, 2.0])
    with _run_storer(engine, broker):
        assert broker.join(QUEUE, timeout=20)
        broker.drop_connections()
        _publish(broker, name, [3.0], start=2)
        assert wait_for(lambda: len(_rows(engine, name)) == 3, timeout=20)
        assert broker.join(QUEUE, timeout=20)
    assert _rows(engine, name) == [1.0, 2.0, 3.0]
