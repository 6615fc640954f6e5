"""nta_utils.amqp, the original engine's synchronous AMQP client API on MessageBus, against the
real RabbitMQ (the session's virtual host)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from nta_utils import amqp
from nta_utils.amqp.constants import AMQPDeliveryModes
from nta_utils.amqp.messages import BasicProperties, Message
from nta_utils.errors import BusError
from nta_utils.message_bus import MessageBus

pytestmark = pytest.mark.integration


@pytest.fixture()
def client(engine_env):  # noqa: ANN201
    with amqp.synchronous_amqp_client.SynchronousAmqpClient(
            amqp.connection.getRabbitmqConnectionParameters()) as amqpClient:
        yield amqpClient


@pytest.fixture()
def names(client):  # noqa: ANN201
    token = uuid.uuid4().hex[:8]
    queue, exchange = f"amqp_test.q.{token}", f"amqp_test.x.{token}"
    yield queue, exchange
    with MessageBus() as bus:
        bus.delete_queue(queue)
        bus.delete_exchange(exchange)


def test_connection_parameters_come_from_rabbitmq_conf(engine_env) -> None:
    params = amqp.connection.getRabbitmqConnectionParameters()
    assert (params.host, params.port, params.vhost) == ("127.0.0.1", 5672, engine_env.vhost)
    assert params.credentials.username == "guest"
    assert "password" not in repr(params.credentials)      # password hidden
    management = amqp.connection.RabbitmqManagementConnectionParams()
    assert (management.host, management.port, management.vhost) == (
        "127.0.0.1", 15672, engine_env.vhost)


def test_declare_bind_publish_consume_ack(client, names) -> None:
    queue, exchange = names
    configured = []
    client._channelConfigCb = lambda c: (configured.append(c), c.requestQoS(prefetchCount=1))
    client.declareExchange(exchange=exchange, exchangeType="fanout", durable=True)
    result = client.declareQueue(queue, durable=True)
    assert (result.queue, result.messageCount, result.consumerCount) == (queue, 0, 0)
    assert configured == [client]
    client.bindQueue(exchange=exchange, queue=result.queue, routingKey="")
    for i in range(3):
        client.publish(Message(f"body {i}", BasicProperties(
            headers={"dataType": "x"} if i == 1 else None, correlationId=f"c{i}",
            deliveryMode=AMQPDeliveryModes.PERSISTENT_MESSAGE)), exchange, f"key{i}")
    assert client.declareQueue(queue, passive=True).messageCount == 3
    consumer = client.createConsumer(queue)
    events = client.readEvents()
    received = []
    for _ in range(3):
        evt = next(events)
        assert isinstance(evt, amqp.messages.ConsumerMessage)
        assert evt.methodInfo.consumerTag == consumer.tag
        received.append((evt.body, evt.properties.headers, evt.properties.correlationId,
                         evt.properties.deliveryMode, evt.methodInfo.routingKey,
                         evt.methodInfo.exchange))
        evt.ack()
    assert received == [
        (b"body 0", None, "c0", 2, "key0", exchange),
        (b"body 1", {"dataType": "x"}, "c1", 2, "key1", exchange),
        (b"body 2", None, "c2", 2, "key2", exchange),
    ]
    consumer.cancel()
    assert client.declareQueue(queue, passive=True).messageCount == 0   # all acked


def test_nack_requeues_and_polling(client, names) -> None:
    queue, _ = names
    client.declareQueue(queue)
    client.publish(Message(b"one"), "", queue, mandatory=True)
    polled = client.getOneMessage(queue)
    assert polled.body == b"one" and polled.methodInfo.routingKey == queue
    polled.nack(requeue=True)
    again = client.getOneMessage(queue)
    assert again.body == b"one" and again.methodInfo.redelivered
    again.ack()
    assert client.getOneMessage(queue) is None


def test_consumer_cancelled_when_queue_deleted(client, names) -> None:
    queue, _ = names
    client.declareQueue(queue)
    client.createConsumer(queue)

    def deleteSoon() -> None:
        time.sleep(0.5)
        with MessageBus() as bus:
            bus.delete_queue(queue)

    deleter = threading.Thread(target=deleteSoon)
    deleter.start()
    evt = client.getNextEvent()
    deleter.join()
    assert isinstance(evt, amqp.consumer.ConsumerCancellation)
    assert list(client.readEvents()) == []     # no consumer left


def test_errors_are_the_original_exceptions(client, names) -> None:
    queue, exchange = names
    with pytest.raises(amqp.exceptions.AmqpChannelError) as info:
        client.declareQueue(queue, passive=True)
    assert info.value.code == amqp.constants.AMQPErrorCodes.NOT_FOUND
    with pytest.raises(amqp.exceptions.AmqpChannelError):
        client.createConsumer(queue)
    with pytest.raises(amqp.exceptions.UnroutableError):
        client.publish(Message(b"x"), "", queue, mandatory=True)
    client.publish(Message(b"x"), "", queue)              # not mandatory: dropped silently
    client.declareExchange(exchange, "fanout")
    with pytest.raises(amqp.exceptions.AmqpChannelError) as info:   # type mismatch: 406
        client.declareExchange(exchange, "direct")
    assert info.value.code == 406
    assert isinstance(info.value, BusError)
    bad = amqp.synchronous_amqp_client.SynchronousAmqpClient(amqp.connection.ConnectionParams(
        host="127.0.0.1", port=1))
    with pytest.raises(amqp.exceptions.AmqpConnectionError):
        bad.declareQueue(queue)
    bad.close()
    assert not bad.isOpen()
