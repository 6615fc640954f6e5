"""What only the in-memory bus has: shared state between connections, the simulated broker
restart, cross-thread wake-up, `join`/`peek` for tests, and its refusals. The behaviour it
shares with RabbitMQ is in test_bus_conformance.py."""

from __future__ import annotations

import threading
import time

import pytest

from nta_utils.errors import BusConnectionError, QueueNotFoundError
from nta_utils.message_bus_types import BrokerChannelError, UnknownDeliveryTagError
from nta_utils.stub_bus import StubBroker, StubBus


@pytest.fixture()
def broker() -> StubBroker:
    return StubBroker()


def test_connections_share_the_broker_and_tags_are_per_connection(broker: StubBroker) -> None:
    producer, consumer = StubBus(broker), StubBus(broker)
    producer.declare_queue("q")
    producer.publish_to_queue("q", b"a")
    producer.publish_to_queue("q", b"b")
    assert [m.body for m in broker.peek("q")] == [b"a", b"b"]
    first = consumer.get("q")
    assert first is not None and first.delivery_tag == 1
    assert broker.unacked_count("q") == 1 and producer.message_count("q") == 1
    with pytest.raises(UnknownDeliveryTagError):
        producer.ack(first.delivery_tag)   # not delivered on that connection
    consumer.ack(first.delivery_tag)
    assert broker.unacked_count("q") == 0


def test_dropped_connections_requeue_fail_the_consumer_and_reconnect(broker: StubBroker) -> None:
    bus = StubBus(broker)
    bus.declare_queue("q")
    for body in (b"1", b"2", b"3"):
        bus.publish_to_queue("q", body)
    consumer = bus.consume("q", inactivity_timeout=0.1)
    taken = [next(consumer), next(consumer)]
    assert bus.connection_generation == 1
    broker.drop_connections()
    assert [(m.body, m.redelivered) for m in broker.peek("q")] == [
        (b"1", True), (b"2", True), (b"3", False)]
    with pytest.raises(BusConnectionError):
        bus.ack(taken[0].delivery_tag)  # type: ignore[union-attr]
    with pytest.raises(BusConnectionError):
        next(consumer)
    bus.publish_to_queue("q", b"4")     # reconnects
    assert bus.connection_generation == 2
    again = bus.get("q")
    assert again is not None and (again.body, again.delivery_tag, again.connection_generation) \
        == (b"1", 1, 2)


def test_a_publish_from_another_thread_wakes_a_waiting_consumer(broker: StubBroker) -> None:
    bus = StubBus(broker)
    bus.declare_queue("q")
    threading.Timer(0.2, lambda: StubBus(broker).publish_to_queue("q", b"late")).start()
    started = time.monotonic()
    message = next(bus.consume("q", inactivity_timeout=5.0))
    assert message is not None and message.body == b"late"
    assert time.monotonic() - started < 2.0


def test_join_waits_until_the_queue_is_drained_and_settled(broker: StubBroker) -> None:
    bus = StubBus(broker)
    bus.declare_queue("q")
    bus.publish_to_queue("q", b"x")
    assert not broker.join("q", timeout=0.05)
    message = bus.get("q")
    assert message is not None and not broker.join("q", timeout=0.05)
    threading.Timer(0.1, lambda: bus.ack(message.delivery_tag)).start()
    assert broker.join("q", timeout=5.0)


def test_exclusive_queue_belongs_to_its_connection(broker: StubBroker) -> None:
    owner, other = StubBus(broker), StubBus(broker)
    owner.declare_queue("mine", durable=False, exclusive=True)
    with pytest.raises(BrokerChannelError) as caught:
        other.get("mine")
    assert caught.value.reply_code == 405
    owner.close()
    assert broker.queue_names() == []


def test_auto_delete_queue_goes_with_its_last_consumer(broker: StubBroker) -> None:
    bus = StubBus(broker)
    bus.declare_queue("temp", durable=False, auto_delete=True)
    consumer = bus.consume("temp", inactivity_timeout=0.05)
    assert next(consumer) is None
    consumer.close()   # type: ignore[attr-defined]
    with pytest.raises(QueueNotFoundError):
        bus.message_count("temp")


def test_unsupported_exchange_type_is_refused(broker: StubBroker) -> None:
    with pytest.raises(ValueError, match="headers"):
        StubBus(broker).declare_exchange("x", "headers")


def test_headers_are_copied_not_shared(broker: StubBroker) -> None:
    bus = StubBus(broker)
    bus.declare_queue("q")
    headers = {"tags": ["a"]}
    bus.publish_to_queue("q", b"x", headers=headers)
    headers["tags"].append("b")
    message = bus.get("q")
    assert message is not None and message.headers == {"tags": ["a"]}
