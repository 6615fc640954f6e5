"""The original engine's simple message-queue API (`MessageBusConnector`), kept for user scripts
and ported services, implemented on `nta_utils.message_bus.MessageBus`.

    with MessageBusConnector() as bus:
        bus.publish(mqName="htmengine.metric.custom.data", body=json.dumps(msg), persistent=True)

    with MessageBusConnector() as bus, bus.consume("myqueue") as consumer:
        for msg in consumer:
            handle(msg.body)
            msg.ack()

Not thread-safe: use one instance per thread. String bodies are published UTF-8 encoded;
consumed bodies are bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from nta_utils.errors import (
    ArgumentTypeError,
    BusConnectionError,
    BusError,
    InvalidArgumentError,
    QueueNotFoundError,
    UnroutableMessageError,
)
from nta_utils.message_bus import (
    AmqpConnectionParams,
    ConsumerCancelledError,
    Message,
    MessageBus,
)
from nta_utils.rabbitmq_management import RabbitmqManagementClient

_log = logging.getLogger(__name__)

PERSISTENT_MESSAGE = 2
NON_PERSISTENT_MESSAGE = 1


class MessageBusConnectorError(BusError):
    """Base of MessageBusConnector errors."""


class MessageQueueNotFound(MessageBusConnectorError, QueueNotFoundError):  # original name
    """The requested message queue was not found (already deleted, or never created)."""


class ConsumerCancelled(MessageBusConnectorError, ConsumerCancelledError):
    """The broker cancelled the consumer (normally because its queue was deleted)."""


@dataclass
class MessageProperties:
    """basic.properties of a published message (the subset the engine uses).

    deliveryMode: 2 = persistent, 1 = transient (None = transient); headers: AMQP headers.
    """

    deliveryMode: int | None = None
    headers: dict[str, Any] | None = None

    @property
    def persistent(self) -> bool:
        """True if the broker should write the message to disk."""
        return self.deliveryMode == PERSISTENT_MESSAGE


@dataclass(frozen=True)
class ConsumedMessage:
    """A consumed message: `body` (bytes), `ack(multiple=False)`, `nack(requeue=True)`."""

    body: bytes
    ack: Callable[..., None] = field(repr=False)
    nack: Callable[..., None] = field(repr=False)
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False


def _encode(body: bytes | str) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise ArgumentTypeError(f"message body must be bytes or str, got {type(body).__name__}")


def _check_mq_name(mqName: str) -> None:
    if not isinstance(mqName, str) or not mqName:
        raise InvalidArgumentError(f"Message queue name cannot be empty or None: {mqName!r}")


class MessageBusConnector:
    """A connection to the message bus with the original queue-oriented primitives."""

    # Most unacknowledged messages a blocking consumer may hold (the original's limit).
    _PREFETCH_MAX = 2

    def __init__(self, connection_params: AmqpConnectionParams | None = None) -> None:
        self._params = connection_params or AmqpConnectionParams.from_config()
        self._bus = MessageBus(self._params)
        self._consumers: list[QueueConsumer] = []

    def __enter__(self) -> MessageBusConnector:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close unclosed consumers and the connection."""
        if self._consumers:
            _log.warning("Closing %d unclosed consumer(s)", len(self._consumers))
            for consumer in tuple(self._consumers):
                consumer.close()
        self._bus.close()

    def createMessageQueue(self, mqName: str, durable: bool) -> None:
        """Create a message queue (durable: its messages survive a broker restart)."""
        _check_mq_name(mqName)
        self._bus.declare_queue(mqName, durable=durable)

    def deleteMessageQueue(self, mqName: str) -> None:
        """Delete a message queue; succeeds if it does not exist."""
        _check_mq_name(mqName)
        self._bus.delete_queue(mqName)

    def purge(self, mqName: str) -> None:
        """Drop all ready messages of the queue; raises MessageQueueNotFound."""
        _check_mq_name(mqName)
        try:
            self._bus.purge_queue(mqName)
        except QueueNotFoundError as exc:
            raise MessageQueueNotFound(f"purge: mq={mqName} not found") from exc

    def isEmpty(self, mqName: str) -> bool:
        """True if the queue has no ready messages; raises MessageQueueNotFound."""
        _check_mq_name(mqName)
        try:
            return self._bus.message_count(mqName) == 0
        except QueueNotFoundError as exc:
            raise MessageQueueNotFound(f"isEmpty: mq={mqName} not found") from exc

    def isMessageQeueuePresent(self, mqName: str) -> bool:  # original (misspelt) name
        """True if the queue exists."""
        _check_mq_name(mqName)
        return self._bus.queue_exists(mqName)

    isMessageQueuePresent = isMessageQeueuePresent

    def getAllMessageQueues(self) -> tuple[str, ...]:
        """Names of every message queue of this connection's virtual host (from the RabbitMQ
        management API: AMQP cannot list queues).

        :raises nta_utils.rabbitmq_management.ManagementApiUnavailable: the API cannot be
            reached (the message says how to enable it)
        """
        client = RabbitmqManagementClient.fromConfig(self._params)
        return tuple(client.getQueueNames(self._params.virtual_host))

    def publish(self, mqName: str, body: bytes | str, persistent: bool = True) -> None:
        """Deliver a message to an existing queue (at least once) or raise
        MessageQueueNotFound."""
        _check_mq_name(mqName)
        try:
            self._bus.publish_to_queue(mqName, _encode(body), persistent=persistent)
        except UnroutableMessageError as exc:
            raise MessageQueueNotFound(
                f"Could not deliver message to mq={mqName}; did you delete the mq or forget "
                f"to create it?") from exc

    def publishExg(self, exchange: str, routingKey: str, body: bytes | str,
                   properties: MessageProperties | None = None,
                   mandatory: bool = False) -> bool:
        """Publish to an exchange ("" = default exchange). Returns False if `mandatory` and
        no queue took the message, else True."""
        properties = properties or MessageProperties()
        try:
            self._bus.publish(exchange, routingKey, _encode(body),
                              persistent=properties.persistent, headers=properties.headers,
                              mandatory=mandatory)
        except UnroutableMessageError:
            return False
        return True

    def consume(self, mqName: str, blocking: bool = True,
                prefetch: int | None = None) -> QueueConsumer:
        """A consumer (context manager and iterable of ConsumedMessage) on its own connection.

        blocking=True waits for further messages forever; blocking=False ends the iteration
        when the queue is empty. `prefetch` defaults to the original's 2.
        """
        _check_mq_name(mqName)
        consumer = QueueConsumer(mqName, blocking=blocking,
                                 prefetch=self._PREFETCH_MAX if prefetch is None else prefetch,
                                 params=self._params, onClose=self._consumers.remove)
        self._consumers.append(consumer)
        return consumer


class QueueConsumer:
    """Iterates over the messages of one queue, reconnecting after connection loss (at most
    `maxFailures` failures within `failureWindowSec`); unacknowledged messages are
    redelivered by the broker after a reconnect, and acking them fails with
    BusConnectionError."""

    maxFailures = 10
    failureWindowSec = 30.0
    sleepOnFailureSec = 0.2

    def __init__(self, mqName: str, blocking: bool, prefetch: int,
                 params: AmqpConnectionParams,
                 onClose: Callable[[QueueConsumer], None] | None = None) -> None:
        self._mqName = mqName
        self._blocking = blocking
        self._prefetch = prefetch
        self._bus: MessageBus | None = MessageBus(params)
        self._onClose = onClose

    def __enter__(self) -> QueueConsumer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the consumer's connection; unacknowledged messages are redelivered."""
        if self._bus is None:
            return
        bus, self._bus = self._bus, None
        if self._onClose is not None:
            onClose, self._onClose = self._onClose, None
            onClose(self)
        bus.close()

    def _wrap(self, bus: MessageBus, message: Message) -> ConsumedMessage:
        generation = message.connection_generation
        tag = message.delivery_tag

        def check() -> None:
            if bus.connection_generation != generation:
                raise BusConnectionError(
                    f"message from mq={self._mqName} was delivered on a connection since lost; "
                    f"the broker redelivers it")

        def ack(multiple: bool = False) -> None:
            check()
            bus.ack(tag, multiple=multiple)

        def nack(requeue: bool = True) -> None:
            check()
            bus.nack(tag, requeue=requeue)

        return ConsumedMessage(body=message.body, ack=ack, nack=nack, headers=message.headers,
                               redelivered=message.redelivered)

    def _live_bus(self) -> MessageBus:
        if self._bus is None:
            raise MessageBusConnectorError(f"consumer of mq={self._mqName} is closed")
        return self._bus

    def pollOneMessage(self) -> ConsumedMessage | None:
        """One message if available (the caller acks it), else None."""
        bus = self._live_bus()
        try:
            message = bus.get(self._mqName)
        except QueueNotFoundError as exc:
            raise MessageQueueNotFound(f"pollOneMessage: mq={self._mqName} not found") from exc
        return None if message is None else self._wrap(bus, message)

    def _messages(self, bus: MessageBus) -> Iterator[Message]:
        if self._blocking:
            for message in bus.consume(self._mqName, prefetch=self._prefetch):
                if message is not None:
                    yield message
        else:
            while (message := bus.get(self._mqName)) is not None:
                yield message

    def __iter__(self) -> Iterator[ConsumedMessage]:
        failures = 0
        windowStart = 0.0
        while True:
            bus = self._live_bus()
            try:
                for message in self._messages(bus):
                    yield self._wrap(bus, message)
                return
            except ConsumerCancelledError as exc:
                raise ConsumerCancelled(f"consumer of mq={self._mqName} cancelled by broker "
                                        f"(queue deleted?)") from exc
            except QueueNotFoundError as exc:
                raise MessageQueueNotFound(f"consume: mq={self._mqName} not found") from exc
            except BusConnectionError:
                now = time.monotonic()
                if failures == 0 or now - windowStart > self.failureWindowSec:
                    failures, windowStart = 0, now
                failures += 1
                if failures >= self.maxFailures:
                    raise
                _log.warning("Connection lost while consuming mq=%s; reconnecting",
                             self._mqName, exc_info=True)
                time.sleep(self.sleepOnFailureSec)
