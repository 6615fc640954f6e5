"""The anomaly service's loop (`AnomalyService.run`) on the in-memory bus: a defineModel result
activates the metric and is published with its header, inference batches are scored, stored and
published to the results exchange before they are acked, a duplicated batch (at-least-once
delivery) changes nothing, and a lost broker connection is survived.

The database is the session's real MariaDB; no broker is used (RabbitMQ's address is pointed at
a port that refuses connections). The broker-backed service test is in test_anomaly_service.py.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stub_bus_support
from runtime_test_support import unique_name
from stub_bus_support import service_thread, swapper_factory

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.messages import ModelCommandResult, ModelInferenceResult
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.results_serialization import deserializeModelResult
from htmengine.repository import queries
from htmengine.repository.queries import MetricStatus
from htmengine.runtime.anomaly_likelihood_helper import AnomalyLikelihoodHelper
from htmengine.runtime.anomaly_service import AnomalyService
from nta_utils.stub_bus import StubBroker, StubBus

# the shared fixture: the session's database, RabbitMQ's port refusing connections
engine = stub_bus_support.engine

T0 = datetime(2015, 5, 1)
EXCHANGE = "stubtest.model.results"
PROBE = "stubtest.model.results.probe"


@pytest.fixture()
def broker() -> StubBroker:
    broker = StubBroker()
    bus = StubBus(broker)
    bus.declare_fanout_exchange(EXCHANGE)
    bus.declare_queue(PROBE)
    bus.bind_queue(PROBE, EXCHANGE)
    return broker


def _submit(broker: StubBroker, uid: str, items: tuple[Any, ...]) -> str:
    with ModelSwapperInterface(StubBus(broker)) as swapper:
        swapper.submitResults(uid, items)
        return swapper.resultsQueueName


def _pending_metric(engine: sa.Engine, broker: StubBroker, num_rows: int) -> str:
    """A monitored metric (CREATE_PENDING, defineModel sent on the stub) with `num_rows` rows."""
    adapter = createDatasourceAdapter("custom", engine=engine, chunkSize=1440,
                                      swapperFactory=swapper_factory(broker))
    uid = str(adapter.monitorMetric({"datasource": "custom",
                                     "metricSpec": {"metric": unique_name()},
                                     "modelParams": {"min": 0, "max": 100}}))
    rng = random.Random(7)
    with engine.begin() as conn:
        queries.addMetricData(conn, uid, [(rng.uniform(0, 100), T0 + timedelta(minutes=5 * i))
                                          for i in range(num_rows)])
    return uid


def _results(first: int, last: int) -> tuple[ModelInferenceResult, ...]:
    rng = random.Random(first)
    return tuple(ModelInferenceResult(rowid, 0, anomalyScore=rng.choice([0.0, 0.05, 0.3, 1.0]))
                 for rowid in range(first, last + 1))


def _run_service(engine: sa.Engine, broker: StubBroker) -> Any:
    def run(stop: Any) -> None:
        bus = StubBus(broker)
        with ModelSwapperInterface(bus) as swapper:
            AnomalyService(engine, AnomalyLikelihoodHelper()).run(swapper, bus, EXCHANGE, stop)
    return service_thread(run)


def _published(broker: StubBroker) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(message, headers) of everything published to the results exchange, taken off the probe."""
    bus = StubBus(broker)
    taken = []
    while (message := bus.get(PROBE)) is not None:
        bus.ack(message.delivery_tag)
        taken.append((deserializeModelResult(message.body), message.headers))
    return taken


def _stored(engine: sa.Engine, uid: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [(r.rowid, r.metric_value, r.raw_anomaly_score, r.anomaly_score)
                for r in queries.getMetricData(conn, uid)]


def test_results_are_applied_published_then_acked(engine: sa.Engine, broker: StubBroker) -> None:
    uid = _pending_metric(engine, broker, 40)
    results_queue = _submit(broker, uid, (ModelCommandResult("c1", "defineModel", 0, args={}),))
    _submit(broker, uid, _results(1, 20))
    _submit(broker, uid, _results(21, 40))
    with _run_service(engine, broker):
        assert broker.join(results_queue, timeout=20)
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE
    published = _published(broker)
    assert published[0][1] == {"dataType": "model-cmd-result"}
    assert published[0][0]["method"] == "defineModel"
    rows = [r for message, _headers in published[1:] for r in message["results"]]
    assert [(r["rowid"], r["value"], r["rawAnomaly"], r["anomaly"]) for r in rows] == \
        _stored(engine, uid)
    assert all(raw is not None for _rowid, _value, raw, _score in _stored(engine, uid))


def test_a_duplicated_batch_changes_nothing(engine: sa.Engine, broker: StubBroker) -> None:
    uid = _pending_metric(engine, broker, 10)
    results_queue = _submit(broker, uid, (ModelCommandResult("c1", "defineModel", 0, args={}),))
    _submit(broker, uid, _results(1, 10))
    with _run_service(engine, broker):
        assert broker.join(results_queue, timeout=20)
        stored = _stored(engine, uid)
        _submit(broker, uid, tuple(ModelInferenceResult(r.rowID, 0, anomalyScore=0.99)
                                   for r in _results(1, 10)))
        assert broker.join(results_queue, timeout=20)
    assert _stored(engine, uid) == stored
    first, again = [m for m, _h in _published(broker)][1:]
    assert first["results"] == again["results"]


def test_a_lost_connection_is_survived(engine: sa.Engine, broker: StubBroker) -> None:
    uid = _pending_metric(engine, broker, 20)
    results_queue = _submit(broker, uid, (ModelCommandResult("c1", "defineModel", 0, args={}),))
    _submit(broker, uid, _results(1, 10))
    with _run_service(engine, broker):
        assert broker.join(results_queue, timeout=20)
        broker.drop_connections()
        _submit(broker, uid, _results(11, 20))
        assert broker.join(results_queue, timeout=20)
    assert [rowid for rowid, _v, raw, _s in _stored(engine, uid) if raw is not None] == \
        list(range(1, 21))
    assert sum(len(m.get("results", [])) for m, _h in _published(broker)) == 20


def test_results_whose_rowids_are_not_row_numbers_are_rejected(engine: sa.Engine,
                                                               broker: StubBroker) -> None:
    """A result batch naming rows by strings (the swapper allows any id; the engine's rows are
    numbered) is rejected and dropped: nothing stored or published, the metric stays ACTIVE,
    and the next batch is scored."""
    uid = _pending_metric(engine, broker, 4)
    results_queue = _submit(broker, uid, (ModelCommandResult("c1", "defineModel", 0, args={}),))
    _submit(broker, uid, (ModelInferenceResult("1", 0, anomalyScore=0.5),
                          ModelInferenceResult("2", 0, anomalyScore=0.5)))
    _submit(broker, uid, _results(1, 4))
    with _run_service(engine, broker):
        assert broker.join(results_queue, timeout=20)
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE
    published = [m for m, _h in _published(broker)][1:]
    assert [[r["rowid"] for r in m["results"]] for m in published] == [[1, 2, 3, 4]]
