"""nta_utils.message_bus_connector.MessageBusConnector (the original API) against the real
RabbitMQ, in this session's own vhost."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from nta_utils.errors import BusConnectionError, QueueNotFoundError
from nta_utils.message_bus import MessageBus
from nta_utils.message_bus_connector import (
    ConsumerCancelled,
    MessageBusConnector,
    MessageProperties,
    MessageQueueNotFound,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def connector(engine_env) -> Iterator[MessageBusConnector]:
    """A connector configured from this session's rabbitmq.conf."""
    with MessageBusConnector() as bus:
        yield bus


@pytest.fixture
def mq(engine_env, connector: MessageBusConnector) -> Iterator[str]:
    """A fresh durable queue, deleted afterwards."""
    name = f"{engine_env.prefix}.mbc.{uuid.uuid4().hex[:10]}"
    connector.createMessageQueue(name, durable=True)
    yield name
    with MessageBus() as cleaner:
        cleaner.delete_queue(name)


def test_tutorial_publish_and_blocking_consume(connector: MessageBusConnector, mq: str) -> None:
    sample = {"protocol": "plain", "data": ["cpu.load 0.5 1700000000"]}
    connector.publish(mqName=mq, body=json.dumps(sample), persistent=True)
    connector.publish(mqName=mq, body=b"raw bytes", persistent=False)
    with connector.consume(mq) as consumer:
        received = []
        for message in consumer:
            received.append(message.body)
            message.ack()
            if len(received) == 2:
                break
    assert json.loads(received[0]) == sample
    assert received[1] == b"raw bytes"
    assert connector.isEmpty(mq)


def test_queue_primitives(engine_env, connector: MessageBusConnector) -> None:
    name = f"{engine_env.prefix}.mbc.prim.{uuid.uuid4().hex[:8]}"
    assert not connector.isMessageQeueuePresent(name)
    with pytest.raises(MessageQueueNotFound, match=name):
        connector.isEmpty(name)
    with pytest.raises(MessageQueueNotFound, match=name):
        connector.purge(name)
    with pytest.raises(MessageQueueNotFound, match=name) as info:
        connector.publish(name, b"x", persistent=True)
    assert isinstance(info.value, QueueNotFoundError)
    connector.createMessageQueue(name, durable=True)
    assert connector.isMessageQeueuePresent(name)
    assert connector.isEmpty(name)
    connector.publish(name, "text body", persistent=True)
    assert not connector.isEmpty(name)
    connector.purge(name)
    assert connector.isEmpty(name)
    connector.deleteMessageQueue(name)
    connector.deleteMessageQueue(name)  # already gone: no error
    assert not connector.isMessageQeueuePresent(name)
    with pytest.raises(ValueError):
        connector.publish("", b"x")


def test_publish_exg(engine_env, connector: MessageBusConnector) -> None:
    exchange = f"{engine_env.prefix}.mbc.exg.{uuid.uuid4().hex[:8]}"
    with MessageBus() as bus:
        bus.declare_fanout_exchange(exchange)
        try:
            # nobody bound: dropped (True) unless mandatory (False)
            assert connector.publishExg(exchange, "", b"dropped") is True
            assert connector.publishExg(exchange, "", b"returned", mandatory=True) is False
            queue = f"{exchange}.q"
            bus.declare_queue(queue)
            bus.bind_queue(queue, exchange)
            properties = MessageProperties(deliveryMode=2,
                                           headers={"dataType": "model-cmd-result"})
            assert connector.publishExg(exchange, "", b"result", properties=properties,
                                        mandatory=True) is True
            message = bus.get(queue)
            assert message.body == b"result"
            assert message.headers == {"dataType": "model-cmd-result"}
            bus.ack(message.delivery_tag)
            assert bus.get(queue) is None
            bus.delete_queue(queue)
        finally:
            bus.delete_exchange(exchange)


def test_polling_and_non_blocking_consumers(engine_env, connector: MessageBusConnector,
                                            mq: str) -> None:
    with connector.consume(mq) as consumer:
        assert consumer.pollOneMessage() is None
        connector.publish(mq, b"one")
        message = consumer.pollOneMessage()
        assert message.body == b"one"
        message.ack()
    for i in range(3):
        connector.publish(mq, str(i).encode())
    with connector.consume(mq, blocking=False) as consumer:
        bodies = []
        for message in consumer:  # ends when the queue is empty
            bodies.append(message.body)
            message.ack()
    assert bodies == [b"0", b"1", b"2"]
    with connector.consume(f"{engine_env.prefix}.absent") as consumer:
        with pytest.raises(MessageQueueNotFound):
            consumer.pollOneMessage()


def test_unacked_messages_return_when_consumer_closes(connector: MessageBusConnector,
                                                      mq: str) -> None:
    connector.publish(mq, b"keep me")
    with connector.consume(mq) as consumer:
        message = next(iter(consumer))
        assert message.body == b"keep me"
        assert connector.isEmpty(mq)  # delivered, not acked
    with connector.consume(mq, blocking=False) as consumer:
        again = next(iter(consumer))
        assert again.body == b"keep me" and again.redelivered
        again.nack(requeue=False)
    assert connector.isEmpty(mq)


def test_blocking_consumer_survives_connection_loss(engine_env,
                                                    connector: MessageBusConnector,
                                                    mq: str) -> None:
    connector.publish(mq, b"first")
    with connector.consume(mq) as consumer:
        stream = iter(consumer)
        first = next(stream)
        assert first.body == b"first"
        subprocess.run(["rabbitmqctl", "-q", "close_all_connections", "--vhost",
                        engine_env.vhost, "test: forced close"],
                       check=True, capture_output=True, timeout=60)
        connector.publish(mq, b"second")  # the connector reconnects too
        received = [next(stream).body, next(stream).body]
        # the unacked "first" comes back, and "second" arrives on the new connection
        assert sorted(received) == [b"first", b"second"]
        with pytest.raises(BusConnectionError, match="since lost"):
            first.ack()
    # the new deliveries were not acked either: both return after the consumer closed
    with connector.consume(mq, blocking=False) as consumer:
        assert sorted(m.body for m in consumer) == [b"first", b"second"]


def test_consumer_cancelled_when_queue_deleted(connector: MessageBusConnector, mq: str) -> None:
    def delete_soon() -> None:
        time.sleep(0.3)
        with MessageBus() as bus:
            bus.delete_queue(mq)

    deleter = threading.Thread(target=delete_soon)
    with connector.consume(mq) as consumer:
        deleter.start()
        with pytest.raises(ConsumerCancelled):
            next(iter(consumer))
    deleter.join()


def test_close_closes_unclosed_consumers(engine_env, mq: str) -> None:
    connector = MessageBusConnector()
    connector.publish(mq, b"pending")
    consumer = connector.consume(mq)
    assert next(iter(consumer)).body == b"pending"
    connector.close()
    with MessageBusConnector() as other:
        assert not other.isEmpty(mq)  # the consumer's delivery went back to the queue
