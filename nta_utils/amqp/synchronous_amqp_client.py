"""`SynchronousAmqpClient`: the original engine's blocking AMQP client API, on top of
`nta_utils.message_bus.MessageBus` (its connection, reconnects, publisher confirms and error
translation).

Differences from the original, which ran one haigha channel: declarations and publishing use
the bus's confirm-mode channel, deliveries its delivery channel; publisher confirms are always
on, so a mandatory message nobody takes raises `UnroutableError` at once, and
`enablePublisherAcks()` only records the request; one consumer at a time per client.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from nta_utils.amqp import connection as amqp_connection
from nta_utils.amqp.constants import AMQPDeliveryModes
from nta_utils.amqp.consumer import Consumer, ConsumerCancellation
from nta_utils.amqp.exceptions import (
    AmqpChannelError,
    AmqpConnectionError,
    NackError,
    UnroutableError,
)
from nta_utils.amqp.messages import (
    BasicProperties,
    ConsumerMessage,
    Message,
    MessageDeliveryInfo,
    MessageGetInfo,
    PolledMessage,
)
from nta_utils.amqp.queue import QueueDeclarationResult
from nta_utils.errors import (
    BusConnectionError,
    BusError,
    InvalidArgumentError,
    MessageNackedError,
    QueueNotFoundError,
    UnroutableMessageError,
)
from nta_utils.message_bus import BrokerChannelError, ConsumerCancelledError, MessageBus

g_log = logging.getLogger(__name__)

_NOT_FOUND = 404


def _translate(error: BusError) -> BusError:
    """The original client's exception for a message-bus error."""
    if isinstance(error, BusConnectionError):
        return AmqpConnectionError(None, str(error))
    if isinstance(error, BrokerChannelError):
        return AmqpChannelError(error.reply_code, str(error))
    if isinstance(error, QueueNotFoundError):
        return AmqpChannelError(_NOT_FOUND, str(error))
    return error


class SynchronousAmqpClient:
    """Blocking AMQP client; use as a context manager (or call `close()`).

    :param connectionParams: `amqp.connection.ConnectionParams` (default: RabbitMQ's
        defaults on localhost)
    :param channelConfigCb: called with this client before its first operation, e.g. to
        `requestQoS`
    """

    def __init__(self, connectionParams: amqp_connection.ConnectionParams | None = None,
                 channelConfigCb: Callable[[SynchronousAmqpClient], None] | None = None
                 ) -> None:
        params = connectionParams or amqp_connection.ConnectionParams()
        self._bus = MessageBus(params.toBusParams())
        self._channelConfigCb = channelConfigCb
        self._configured = False
        self._prefetchCount = 0
        self._publisherAcks = False
        self._consumer: Consumer | None = None
        self._noAck = False
        self._events: Iterator[Any] | None = None
        self._tags = itertools.count(1)
        self._open = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bus={self._bus.connection_params.describe()})"

    def __enter__(self) -> SynchronousAmqpClient:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def _run(self, action: Callable[[], Any]) -> Any:
        """Run a bus operation (configuring the channel first); translate its errors."""
        if not self._open:
            raise AmqpConnectionError(None, "client is closed")
        try:
            if not self._configured:
                self._configured = True
                if self._channelConfigCb is not None:
                    self._channelConfigCb(self)
            return action()
        except UnroutableMessageError as error:
            if isinstance(error, UnroutableError):
                raise
            raise UnroutableError([str(error)]) from error
        except MessageNackedError as error:
            if isinstance(error, NackError):
                raise
            raise NackError([str(error)]) from error
        except (AmqpChannelError, AmqpConnectionError):
            raise
        except BusError as error:
            raise _translate(error) from error

    def isOpen(self) -> bool:
        """True until `close()`."""
        return self._open

    def close(self) -> None:
        """Close the connection; unacknowledged messages go back to their queues."""
        self._stopConsuming()
        self._bus.close()
        self._open = False

    # ------------------------------------------------------------------ publishing

    def enablePublisherAcks(self) -> None:
        """Ask for RabbitMQ publisher acknowledgements (always on with this client: every
        publish waits for the broker's ack and raises NackError on a nack)."""
        self._publisherAcks = True

    def publish(self, message: Message, exchange: str, routingKey: str,
                mandatory: bool = False) -> None:
        """Publish `message` (bytes or str body; persistent if its deliveryMode is 2).

        :raises UnroutableError: `mandatory` and no queue took it
        :raises NackError: the broker refused it
        """
        body = message.body.encode() if isinstance(message.body, str) else message.body
        props = message.properties
        persistent = props.deliveryMode == AMQPDeliveryModes.PERSISTENT_MESSAGE
        extra = {k: v for k, v in props.toPika().items() if k != "delivery_mode"}
        self._run(lambda: self._bus.publish(exchange, routingKey, body, persistent=persistent,
                                            headers=props.headers, mandatory=mandatory,
                                            properties=extra))

    # ------------------------------------------------------------------ declarations

    def declareExchange(self, exchange: str, exchangeType: str, passive: bool = False,
                        durable: bool = False, autoDelete: bool = False,
                        arguments: dict[str, Any] | None = None) -> None:
        """Create the exchange if missing (`passive`: check that it exists)."""
        self._run(lambda: self._bus.declare_exchange(
            exchange, exchangeType, durable=durable, passive=passive, auto_delete=autoDelete,
            arguments=arguments))

    def deleteExchange(self, exchange: str, ifUnused: bool = False) -> None:
        """Delete the exchange."""
        self._run(lambda: self._bus.delete_exchange(exchange, if_unused=ifUnused))

    def declareQueue(self, queue: str, passive: bool = False, durable: bool = False,
                     exclusive: bool = False, autoDelete: bool = False,
                     arguments: dict[str, Any] | None = None) -> QueueDeclarationResult:
        """Create the queue if missing (`passive`: check that it exists); returns its name and
        message and consumer counts. (Broker-named queues, queue "", are not supported.)"""
        info = self._run(lambda: self._bus.declare_queue(
            queue, durable, passive=passive, exclusive=exclusive, auto_delete=autoDelete,
            arguments=arguments))
        return QueueDeclarationResult(info.name, info.message_count, info.consumer_count)

    def deleteQueue(self, queue: str, ifUnused: bool = False, ifEmpty: bool = False) -> None:
        """Delete the queue and its messages."""
        self._run(lambda: self._bus.delete_queue(queue, if_unused=ifUnused, if_empty=ifEmpty))

    def purgeQueue(self, queue: str) -> int:
        """Drop the queue's ready messages; returns how many."""
        return int(self._run(lambda: self._bus.purge_queue(queue)))

    def bindQueue(self, queue: str, exchange: str, routingKey: str,
                  arguments: dict[str, Any] | None = None) -> None:
        """Bind the queue to the exchange."""
        self._run(lambda: self._bus.bind_queue(queue, exchange, routingKey, arguments))

    def unbindQueue(self, queue: str, exchange: str, routingKey: str,
                    arguments: dict[str, Any] | None = None) -> None:
        """Remove a binding."""
        self._run(lambda: self._bus.unbind_queue(queue, exchange, routingKey, arguments))

    # ------------------------------------------------------------------ receiving

    def requestQoS(self, prefetchSize: int = 0, prefetchCount: int = 0,
                   entireConnection: bool = False) -> None:
        """Limit unacknowledged deliveries to `prefetchCount` (0: no limit); applies to
        consumers created afterwards. `prefetchSize` must be 0 (RabbitMQ ignores it)."""
        if prefetchSize:
            raise InvalidArgumentError(f"prefetchSize is not supported by RabbitMQ, got {prefetchSize}")
        self._prefetchCount = int(prefetchCount)

    def createConsumer(self, queue: str, noLocal: bool = False, noAck: bool = False,
                       exclusive: bool = False) -> Consumer:
        """Start consuming `queue`; read its messages with `readEvents()` / `getNextEvent()`.

        :raises AmqpChannelError: the queue does not exist (code 404)
        """
        if self._consumer is not None:
            raise InvalidArgumentError(f"this client already has a consumer ({self._consumer}); cancel "
                             "it first or use another client")
        self._run(lambda: self._bus.declare_queue(queue, passive=True))
        tag = f"channel-{next(self._tags)}-{uuid.uuid4().hex[:8]}"
        self._consumer = Consumer(tag, queue, self._cancelConsumer)
        self._noAck = noAck
        self._events = self._bus.consume(queue, prefetch=self._prefetchCount,
                                         auto_ack=noAck)
        return self._consumer

    def _stopConsuming(self) -> None:
        events, self._events = self._events, None
        self._consumer = None
        if events is not None:
            events.close()  # type: ignore[attr-defined]

    def _cancelConsumer(self, consumerTag: str) -> list[Any]:
        if self._consumer is not None and self._consumer.tag == consumerTag:
            self._stopConsuming()
        return []

    def _ack(self, deliveryTag: int, multiple: bool) -> None:
        self._run(lambda: self._bus.ack(deliveryTag, multiple))

    def _nack(self, deliveryTag: int, multiple: bool, requeue: bool) -> None:
        if multiple:
            self._run(lambda: self._bus.nack_all(requeue))
        else:
            self._run(lambda: self._bus.nack(deliveryTag, requeue))

    def getNextEvent(self) -> ConsumerMessage | ConsumerCancellation:
        """Block until the next event: a ConsumerMessage, or a ConsumerCancellation if the
        broker cancelled the consumer.

        :raises AmqpConnectionError: the connection was lost (unacknowledged messages are
            redelivered to the next consumer)
        """
        if self._events is None or self._consumer is None:
            raise InvalidArgumentError("no consumer: call createConsumer() first")
        consumer = self._consumer
        try:
            message = self._run(lambda: next(self._events))  # type: ignore[arg-type]
        except AmqpChannelError as error:
            if not isinstance(error.__cause__, ConsumerCancelledError):
                raise
            self._stopConsuming()
            return ConsumerCancellation(consumer.tag)
        except AmqpConnectionError:
            self._stopConsuming()
            raise
        info = MessageDeliveryInfo(consumer.tag, message.delivery_tag, message.redelivered,
                                   message.exchange, message.routing_key)
        acks = (None, None) if self._noAck else (self._ack, self._nack)
        return ConsumerMessage(message.body,
                               BasicProperties.fromPika(message.headers, message.properties),
                               info, *acks)

    def readEvents(self) -> Iterator[ConsumerMessage | ConsumerCancellation]:
        """Yield events (see `getNextEvent`) as they arrive, until the consumer is gone."""
        while self._events is not None:
            event = self.getNextEvent()
            yield event

    def getOneMessage(self, queue: str, noAck: bool = False) -> PolledMessage | None:
        """Take one message from `queue` (Basic.Get), or None if it is empty."""
        message = self._run(lambda: self._bus.get(queue))
        if message is None:
            return None
        info = MessageGetInfo(message.delivery_tag, message.redelivered, message.exchange,
                              message.routing_key)
        polled = PolledMessage(message.body,
                               BasicProperties.fromPika(message.headers, message.properties),
                               info, self._ack, self._nack)
        if noAck:
            polled.ack()
        return polled

    def ackAll(self) -> None:
        """Acknowledge every unacknowledged message received on this client."""
        self._run(self._bus.ack_all)

    def nackAll(self, requeue: bool = False) -> None:
        """Reject every unacknowledged message received on this client."""
        self._run(lambda: self._bus.nack_all(requeue))
