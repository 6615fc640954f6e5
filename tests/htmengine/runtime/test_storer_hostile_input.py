"""Hostile input at the metric storer (issue 12): values the model cannot encode and
far-future timestamps are rejected with their source while the rest of the batch is stored;
poison messages go to the dead-letter queue and the messages behind them flow on."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from runtime_test_support import unique_name, wait_for

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.plaintext import encodeBatchMessage
from htmengine.repository import engineFactory, schema
from htmengine.runtime.metric_storer import MetricStorer
from htmengine.runtime.service_support import StopFlag
from nta_utils.dead_letter import (
    HEADER_ATTEMPTS,
    HEADER_QUEUE,
    HEADER_REASON,
    dead_letter_queue_name,
    list_dead_letters,
    requeue_dead_letters,
)
from nta_utils.message_bus import MessageBus

pytestmark = pytest.mark.integration

T0 = 1430000000
POISON = b"[" * 100000 + b"]" * 100000


@pytest.fixture()
def engine(migrated_db) -> sa.Engine:
    return engineFactory()


@pytest.fixture()
def storer(engine, engine_env):
    with ModelSwapperInterface() as swapper:
        adapter = createDatasourceAdapter("custom", engine=engine, chunkSize=100)
        yield MetricStorer(engine, swapper, adapter, chunkSize=100)


def _values(engine: sa.Engine, name: str) -> list[float]:
    m, d = schema.metric.c, schema.metric_data.c
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(
            sa.select(d.metric_value).select_from(schema.metric_data.join(schema.metric))
            .where(m.name == name).order_by(d.rowid))]


def test_unencodable_value_rejected_with_source_rest_of_batch_stored(storer, engine,
                                                                    caplog) -> None:
    name = unique_name()
    lines = [f"{name} 1 {T0}", f"{name} 1.7976931348623157e308 {T0 + 300}",
             f"{name} -1e101 {T0 + 600}", f"{name} 2 {T0 + 900}"]
    caplog.set_level(logging.WARNING, logger="htmengine.runtime.metric_storer")
    stats = storer.processMessages([(encodeBatchMessage(lines, "tcp:10.2.3.4:5"), "q 1")])
    assert (stats.storedRows, stats.malformedLines) == (2, 2)
    assert _values(engine, name) == [1.0, 2.0]
    rejected = [r.getMessage() for r in caplog.records if "range the model can encode"
                in r.getMessage()]
    assert len(rejected) == 2 and all("tcp:10.2.3.4:5" in text for text in rejected)


def test_far_future_timestamp_rejected_and_metric_not_blocked(storer, engine, caplog) -> None:
    name = unique_name()
    now = int(datetime.now().timestamp())
    caplog.set_level(logging.WARNING, logger="htmengine.runtime.metric_storer")
    storer.processMessages([(encodeBatchMessage([f"{name} 99 4102444800"], "tcp:1.1.1.1:1"),
                             "q 1")])
    stats = storer.processMessages([(encodeBatchMessage(
        [f"{name} 5 {now - 60}", f"{name} 6 {now}"], "tcp:1.1.1.1:1"), "q 2")])
    assert stats.storedRows == 2
    assert _values(engine, name) == [5.0, 6.0]
    assert any("ahead of the receiver's clock" in r.getMessage()
               and "tcp:1.1.1.1:1" in r.getMessage() for r in caplog.records)


def test_horizon_is_configurable(engine, engine_env) -> None:
    name = unique_name()
    soon = int((datetime.now() + timedelta(hours=2)).timestamp())
    with ModelSwapperInterface() as swapper:
        adapter = createDatasourceAdapter("custom", engine=engine, chunkSize=100)
        strict = MetricStorer(engine, swapper, adapter, chunkSize=100, horizonSeconds=3600)
        stats = strict.processMessages([(encodeBatchMessage([f"{name} 1 {soon}"]), "q 1")])
    assert (stats.storedRows, stats.malformedLines) == (0, 1)


def _run_storer(storer: MetricStorer, bus_factory, queue: str) -> tuple[StopFlag,
                                                                       threading.Thread]:
    stop = StopFlag()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            with bus_factory() as consumerBus:
                storer.run(consumerBus, queue, 50, stop, maxAttempts=3)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
            raise

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.errors = errors  # type: ignore[attr-defined]
    return stop, thread


def test_poison_messages_dead_lettered_and_the_rest_flows(storer, engine, bus, custom_queue,
                                                           caplog) -> None:
    dlq = dead_letter_queue_name(custom_queue)
    bus.declare_queue(dlq, durable=True)
    bus.purge_queue(dlq)
    name = unique_name()
    poisons = [POISON, b"\xff\xfe not json", b'{"protocol": "plain", "data": [1, 2]}',
               b'{"protocol": "plain", "data": "' + b"x" * 300 + b'"}']
    bus.publish_to_queue(custom_queue, encodeBatchMessage([f"{name} 1 {T0}"]))
    for index, body in enumerate(poisons):
        bus.publish_to_queue(custom_queue, body)
        bus.publish_to_queue(custom_queue,
                             encodeBatchMessage([f"{name} {index + 2} {T0 + 300 * (index + 1)}"]))
    caplog.set_level(logging.INFO, logger="htmengine.runtime.metric_storer")
    stop, thread = _run_storer(storer, MessageBus, custom_queue)
    try:
        wait_for(lambda: len(_values(engine, name)) == 5, 30, what="the good samples")
        wait_for(lambda: bus.message_count(custom_queue) == 0, 10, what="acks")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.errors  # type: ignore[attr-defined]
    assert _values(engine, name) == [1.0, 2.0, 3.0, 4.0, 5.0]
    letters = list_dead_letters(bus, dlq)
    assert [letter.body for letter in letters] == poisons
    assert all(letter.queue == custom_queue and letter.attempts == 1 for letter in letters)
    assert "nests JSON arrays/objects deeper than the limit of 32" in letters[0].reason
    assert "not JSON" in letters[1].reason
    assert "list of strings" in letters[2].reason
    logged = [r.getMessage() for r in caplog.records if "Dead-lettered" in r.getMessage()]
    assert len(logged) == len(poisons)
    assert all(custom_queue in text and "sha1:" in text for text in logged)
    assert "[[[[" in logged[0]
    # the letters stay listed until requeued
    assert len(list_dead_letters(bus, dlq)) == len(poisons)
    assert requeue_dead_letters(bus, dlq, {letters[1].label}) == 1
    assert bus.message_count(dlq) == len(poisons) - 1
    requeued = bus.get(custom_queue)
    assert requeued.body == poisons[1] and HEADER_REASON not in requeued.headers
    bus.ack(requeued.delivery_tag)
    bus.purge_queue(dlq)


class _FailingStorer(MetricStorer):
    """Raises an unexpected error for one metric (a processing bug a message triggers)."""

    calls = 0

    def _sampleGroup(self, name, group):  # noqa: ANN001, ANN202
        if name.startswith("poison."):
            _FailingStorer.calls += 1
            raise RecursionError("maximum recursion depth exceeded")
        return super()._sampleGroup(name, group)


def test_processing_failure_retried_boundedly_then_dead_lettered(engine, bus, custom_queue,
                                                                  engine_env) -> None:
    dlq = dead_letter_queue_name(custom_queue)
    bus.declare_queue(dlq, durable=True)
    bus.purge_queue(dlq)
    good, bad = unique_name(), unique_name("poison")
    bus.publish_to_queue(custom_queue, encodeBatchMessage([f"{good} 1 {T0}"]))
    bus.publish_to_queue(custom_queue, encodeBatchMessage([f"{bad} 1 {T0}"]))
    bus.publish_to_queue(custom_queue, encodeBatchMessage([f"{good} 2 {T0 + 300}"]))
    with ModelSwapperInterface() as swapper:
        storer = _FailingStorer(engine, swapper,
                                createDatasourceAdapter("custom", engine=engine), chunkSize=100)
        _FailingStorer.calls = 0
        stop, thread = _run_storer(storer, MessageBus, custom_queue)
        try:
            wait_for(lambda: bus.message_count(dlq) == 1, 30, what="the dead letter")
            wait_for(lambda: bus.message_count(custom_queue) == 0, 10, what="acks")
        finally:
            stop.set()
            thread.join(10)
    assert not thread.errors  # type: ignore[attr-defined]
    assert _values(engine, good) == [1.0, 2.0]
    message = bus.get(dlq)
    assert message.headers[HEADER_QUEUE] == custom_queue
    assert message.headers[HEADER_ATTEMPTS] == 3
    assert "RecursionError" in message.headers[HEADER_REASON]
    bus.ack(message.delivery_tag)
    # once in the whole batch, then 3 attempts alone
    assert _FailingStorer.calls == 4
