"""nta_utils.message_bus.MessageBus against the real RabbitMQ, in this session's own vhost."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from nta_utils.errors import (
    BrokerAccessError,
    BusConnectionError,
    BusError,
    MessageNackedError,
    QueueNotFoundError,
    UnroutableMessageError,
)
from nta_utils.message_bus import (
    AmqpConnectionParams,
    BrokerChannelError,
    ConsumerCancelledError,
    MessageBus,
    UnknownDeliveryTagError,
)

pytestmark = pytest.mark.integration


def close_vhost_connections(vhost: str) -> None:
    """Make the broker drop every connection of `vhost` (as a broker restart would)."""
    subprocess.run(["rabbitmqctl", "-q", "close_all_connections", "--vhost", vhost,
                    "test: forced close"], check=True, capture_output=True, timeout=60)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def bus(engine_env) -> Iterator[MessageBus]:
    """A MessageBus configured from this session's rabbitmq.conf (+ vhost override)."""
    with MessageBus() as message_bus:
        yield message_bus


@pytest.fixture
def observer(engine_env) -> Iterator[MessageBus]:
    """A second, independent connection to inspect queues."""
    with MessageBus() as message_bus:
        yield message_bus


@pytest.fixture
def queue(engine_env, bus: MessageBus) -> Iterator[str]:
    """A fresh durable queue, deleted afterwards."""
    name = f"{engine_env.prefix}.bus.{uuid.uuid4().hex[:10]}"
    bus.declare_queue(name)
    yield name
    with MessageBus() as cleaner:
        cleaner.delete_queue(name)


def test_connection_params_come_from_rabbitmq_conf(engine_env) -> None:
    params = AmqpConnectionParams.from_config()
    assert params.virtual_host == engine_env.vhost
    assert (params.host, params.port, params.user) == ("127.0.0.1", 5672, "guest")


def test_publish_consume_ack(bus: MessageBus, observer: MessageBus, queue: str) -> None:
    for i in range(3):
        bus.publish_to_queue(queue, f"m{i}".encode(), headers={"seq": i})
    received = []
    for message in bus.consume(queue, prefetch=10, inactivity_timeout=0.5):
        if message is None:
            break
        received.append(message)
        bus.ack(message.delivery_tag)
    assert [m.body for m in received] == [b"m0", b"m1", b"m2"]
    assert [m.headers["seq"] for m in received] == [0, 1, 2]
    assert {m.routing_key for m in received} == {queue}
    assert not any(m.redelivered for m in received)
    bus.close()
    # acked messages are gone for good, even after the consumer's connection closed
    assert observer.message_count(queue) == 0
    assert observer.get(queue) is None


def test_unacked_messages_are_redelivered_after_connection_closes(
        engine_env, observer: MessageBus, queue: str) -> None:
    consumer = MessageBus()
    observer.publish_to_queue(queue, b"first")
    observer.publish_to_queue(queue, b"second")
    first = consumer.get(queue)
    second = consumer.get(queue)
    assert (first.body, second.body) == (b"first", b"second")
    consumer.ack(first.delivery_tag)
    assert observer.message_count(queue) == 0  # second is delivered but not acked
    consumer.close()
    assert wait_for(lambda: observer.message_count(queue) == 1)
    again = observer.get(queue)
    assert again.body == b"second" and again.redelivered


def test_nack_requeues_or_drops(bus: MessageBus, observer: MessageBus, queue: str) -> None:
    bus.publish_to_queue(queue, b"x")
    message = bus.get(queue)
    bus.nack(message.delivery_tag, requeue=True)
    again = bus.get(queue)
    assert again.body == b"x" and again.redelivered
    bus.nack(again.delivery_tag, requeue=False)
    assert bus.get(queue) is None
    assert observer.message_count(queue) == 0


def test_settling_a_tag_twice_is_refused_without_breaking_the_channel(
        bus: MessageBus, queue: str) -> None:
    bus.publish_to_queue(queue, b"a")
    bus.publish_to_queue(queue, b"b")
    first = bus.get(queue)
    bus.ack(first.delivery_tag)
    with pytest.raises(UnknownDeliveryTagError, match=str(first.delivery_tag)):
        bus.ack(first.delivery_tag)
    second = bus.get(queue)  # the delivery channel still works
    assert second.body == b"b"
    bus.ack(second.delivery_tag)


def test_publish_is_confirmed_before_returning(bus: MessageBus, observer: MessageBus,
                                               queue: str) -> None:
    for i in range(20):
        bus.publish_to_queue(queue, str(i).encode())
        # confirmed: the broker has enqueued it by the time publish returns
        assert observer.message_count(queue) == i + 1


def test_nacked_publish_raises(engine_env, bus: MessageBus) -> None:
    name = f"{engine_env.prefix}.bus.full.{uuid.uuid4().hex[:8]}"
    params = AmqpConnectionParams.from_config().to_pika()
    with pika.BlockingConnection(params) as connection:
        # a queue that makes the broker nack publishes once it holds one message
        connection.channel().queue_declare(
            name, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    try:
        bus.publish_to_queue(name, b"fits")
        with pytest.raises(MessageNackedError, match=name):
            bus.publish_to_queue(name, b"refused")
        assert bus.message_count(name) == 1
    finally:
        bus.delete_queue(name)


def test_unroutable_mandatory_publish_raises(engine_env, bus: MessageBus) -> None:
    missing = f"{engine_env.prefix}.no.such.queue"
    with pytest.raises(UnroutableMessageError) as info:
        bus.publish_to_queue(missing, b"lost")
    assert missing in str(info.value) and "''" in str(info.value)
    exchange = f"{engine_env.prefix}.lonely.{uuid.uuid4().hex[:8]}"
    bus.declare_fanout_exchange(exchange)
    try:
        with pytest.raises(UnroutableMessageError, match=exchange):
            bus.publish(exchange, "rk", b"nobody listens")
        bus.publish(exchange, "rk", b"dropped quietly", mandatory=False)
    finally:
        bus.delete_exchange(exchange)


def test_fanout_exchange_delivers_to_every_bound_queue(engine_env, bus: MessageBus) -> None:
    exchange = f"{engine_env.prefix}.results.{uuid.uuid4().hex[:8]}"
    queues = [f"{exchange}.q{i}" for i in range(2)]
    bus.declare_fanout_exchange(exchange)
    try:
        for name in queues:
            bus.declare_queue(name)
            bus.bind_queue(name, exchange)
        bus.publish(exchange, "ignored-by-fanout", b"result", headers={"dataType": "x"})
        for name in queues:
            message = bus.get(name)
            assert message.body == b"result"
            assert message.exchange == exchange
            assert message.headers == {"dataType": "x"}
            bus.ack(message.delivery_tag)
    finally:
        for name in queues:
            bus.delete_queue(name)
        bus.delete_exchange(exchange)


def test_queue_management(engine_env, bus: MessageBus) -> None:
    name = f"{engine_env.prefix}.mgmt.{uuid.uuid4().hex[:8]}"
    assert not bus.queue_exists(name)
    with pytest.raises(QueueNotFoundError, match=name):
        bus.message_count(name)
    with pytest.raises(QueueNotFoundError, match=name):
        bus.purge_queue(name)
    bus.declare_queue(name)
    bus.declare_queue(name)  # idempotent
    assert bus.queue_exists(name)
    for i in range(5):
        bus.publish_to_queue(name, bytes([i]))
    assert bus.message_count(name) == 5
    assert bus.purge_queue(name) == 5
    assert bus.message_count(name) == 0
    bus.delete_queue(name)
    assert not bus.queue_exists(name)
    bus.delete_queue(name)  # missing queue: no error
    bus.delete_exchange(f"{name}.never.declared")


def test_broker_errors_keep_deliveries_and_the_bus_usable(
        engine_env, bus: MessageBus, queue: str) -> None:
    bus.publish_to_queue(queue, b"held")
    held = bus.get(queue)
    with pytest.raises(QueueNotFoundError, match="no.such.exchange"):
        bus.publish(f"{engine_env.prefix}.no.such.exchange", "", b"x")
    with pytest.raises(QueueNotFoundError):
        bus.bind_queue(queue, f"{engine_env.prefix}.no.such.exchange")
    with pytest.raises(BrokerChannelError) as info:
        bus.declare_queue(queue, durable=False)  # exists as durable: 406
    assert info.value.reply_code == 406
    bus.ack(held.delivery_tag)  # the delivery survived the errors on the other channel
    bus.publish_to_queue(queue, b"after")
    assert bus.get(queue).body == b"after"


def test_prefetch_limits_unacked_deliveries(bus: MessageBus, observer: MessageBus,
                                            queue: str) -> None:
    for i in range(10):
        observer.publish_to_queue(queue, str(i).encode())
    stream = bus.consume(queue, prefetch=3, inactivity_timeout=0.2)
    first = next(stream)
    assert first.body == b"0"
    # the broker hands out 3 and keeps 7 ready while none is acked
    assert wait_for(lambda: observer.message_count(queue) == 7)
    time.sleep(0.3)
    assert observer.message_count(queue) == 7
    bus.ack(first.delivery_tag)
    next(stream)  # lets pika send the ack and receive the next delivery
    assert wait_for(lambda: observer.message_count(queue) == 6)
    stream.close()
    # closing the consumer returns its buffered, unacked messages
    bus.close()
    assert wait_for(lambda: observer.message_count(queue) == 9)


def test_inactivity_timeout_yields_none(bus: MessageBus, queue: str) -> None:
    started = time.monotonic()
    stream = bus.consume(queue, inactivity_timeout=0.3)
    assert next(stream) is None
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 3.0
    bus.publish_to_queue(queue, b"late")
    message = next(stream)
    assert message is not None and message.body == b"late"
    bus.ack(message.delivery_tag)
    stream.close()


def test_one_consumer_per_bus(bus: MessageBus, queue: str) -> None:
    stream = bus.consume(queue, inactivity_timeout=0.1)
    assert next(stream) is None
    with pytest.raises(BusError, match="active consumer"):
        next(bus.consume(queue))
    stream.close()
    second = bus.consume(queue, inactivity_timeout=0.1)
    assert next(second) is None
    second.close()


def test_consuming_a_missing_queue_or_a_deleted_one(engine_env, bus: MessageBus,
                                                    observer: MessageBus, queue: str) -> None:
    with pytest.raises(QueueNotFoundError):
        next(bus.consume(f"{engine_env.prefix}.absent", inactivity_timeout=0.1))
    stream = bus.consume(queue, inactivity_timeout=0.2)
    assert next(stream) is None
    observer.delete_queue(queue)
    with pytest.raises(ConsumerCancelledError):
        for _ in range(50):
            next(stream)


def test_reconnects_after_broker_closes_the_connection(
        engine_env, bus: MessageBus, observer: MessageBus, queue: str) -> None:
    bus.publish_to_queue(queue, b"before")
    generation = bus.connection_generation
    close_vhost_connections(engine_env.vhost)
    bus.publish_to_queue(queue, b"after")  # reconnects transparently
    assert bus.connection_generation == generation + 1
    assert bus.message_count(queue) == 2
    assert [bus.get(queue).body for _ in range(2)] == [b"before", b"after"]
    close_vhost_connections(engine_env.vhost)
    # the unacked deliveries of the lost connection return to the queue
    assert wait_for(lambda: bus.message_count(queue) == 2)


def test_consumer_sees_connection_loss_and_messages_are_redelivered(
        engine_env, bus: MessageBus, queue: str) -> None:
    bus.publish_to_queue(queue, b"work")
    stream = bus.consume(queue, prefetch=1, inactivity_timeout=0.2)
    message = next(stream)
    assert message.body == b"work"
    close_vhost_connections(engine_env.vhost)
    with pytest.raises(BusConnectionError):
        for _ in range(50):
            next(stream)
    with pytest.raises(UnknownDeliveryTagError):
        bus.ack(message.delivery_tag)  # void: it belongs to the lost connection
    restarted = bus.consume(queue, prefetch=1, inactivity_timeout=0.5)
    again = next(restarted)
    assert again.body == b"work" and again.redelivered
    bus.ack(again.delivery_tag)
    restarted.close()


def test_retries_run_out_into_bus_connection_error(engine_env) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    params = AmqpConnectionParams(port=closed_port, virtual_host=engine_env.vhost)
    bus = MessageBus(params, max_attempts=4, initial_retry_delay=0.05)
    for operation in (lambda: bus.declare_queue("q"),
                      lambda: bus.publish_to_queue("q", b"x"),
                      lambda: bus.get("q")):
        started = time.monotonic()
        with pytest.raises(BusConnectionError, match=r"after 4 attempt") as info:
            operation()
        assert str(params.port) in str(info.value)
        # 0.05 + 0.1 + 0.2 s of back-off between the 4 attempts
        assert 0.3 <= time.monotonic() - started < 5.0
    bus.close()


def test_missing_vhost_fails_fast(engine_env) -> None:
    bus = MessageBus(AmqpConnectionParams(virtual_host=f"{engine_env.vhost}_absent"))
    started = time.monotonic()
    with pytest.raises(BrokerAccessError, match="virtual host"):
        bus.declare_queue("q")
    assert time.monotonic() - started < 2.0


def test_bad_arguments_and_closed_bus(bus: MessageBus, queue: str) -> None:
    with pytest.raises(TypeError, match="bytes"):
        bus.publish_to_queue(queue, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="queue name"):
        bus.declare_queue("")
    bus.close()
    with pytest.raises(BusError, match="closed"):
        bus.get(queue)


def test_stale_consumer_does_not_drop_a_newer_connection(
        engine_env, bus: MessageBus, observer: MessageBus, queue: str) -> None:
    other = f"{queue}.other"
    bus.declare_queue(other)
    try:
        stream = bus.consume(queue, inactivity_timeout=0.2)
        assert next(stream) is None
        close_vhost_connections(engine_env.vhost)
        bus.publish_to_queue(other, b"fresh")  # reconnects: a new connection generation
        fresh = bus.get(other)
        with pytest.raises(BusConnectionError):
            for _ in range(50):
                next(stream)  # the consumer of the lost connection notices
        bus.ack(fresh.delivery_tag)  # the newer connection and its deliveries are intact
        assert observer.message_count(other) == 0
        assert bus.get(other) is None
    finally:
        bus.delete_queue(other)
