"""Messages of the original AMQP client: what is published (`Message`) and what is received
(`ConsumerMessage` from a consumer, `PolledMessage` from `getOneMessage`), with their
properties and delivery information."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MessageDeliveryInfo:
    """Delivery information of a consumed message (Basic.Deliver)."""

    consumerTag: str
    deliveryTag: int
    redelivered: bool
    exchange: str
    routingKey: str


@dataclass
class MessageGetInfo:
    """Delivery information of a polled message (Basic.Get-Ok)."""

    deliveryTag: int
    redelivered: bool
    exchange: str
    routingKey: str
    messageCount: int | None = None


@dataclass
class MessageReturnInfo:
    """Why the broker returned a published message (Basic.Return)."""

    replyCode: int
    replyText: str
    exchange: str
    routingKey: str


# (original attribute, pika property) pairs
PROPERTY_NAMES = (
    ("contentType", "content_type"), ("contentEncoding", "content_encoding"),
    ("deliveryMode", "delivery_mode"), ("priority", "priority"),
    ("correlationId", "correlation_id"), ("replyTo", "reply_to"),
    ("expiration", "expiration"), ("messageId", "message_id"), ("timestamp", "timestamp"),
    ("messageType", "type"), ("userId", "user_id"), ("appId", "app_id"),
    ("clusterId", "cluster_id"),
)


@dataclass
class BasicProperties:
    """Content properties of a message; None means absent. `timestamp` is seconds since
    the epoch; `deliveryMode` 2 is persistent (see constants.AMQPDeliveryModes)."""

    contentType: str | None = None
    contentEncoding: str | None = None
    headers: dict[str, Any] | None = None
    deliveryMode: int | None = None
    priority: int | None = None
    correlationId: str | None = None
    replyTo: str | None = None
    expiration: str | None = None
    messageId: str | None = None
    timestamp: int | None = None
    messageType: str | None = None
    userId: str | None = None
    appId: str | None = None
    clusterId: str | None = None

    def toPika(self) -> dict[str, Any]:
        """The set properties (other than headers) by their pika names."""
        return {pikaName: getattr(self, name) for name, pikaName in PROPERTY_NAMES
                if getattr(self, name) is not None}

    @classmethod
    def fromPika(cls, headers: dict[str, Any] | None,
                 properties: dict[str, Any]) -> BasicProperties:
        """From a received message's headers and pika-named properties."""
        values = {name: properties[pikaName] for name, pikaName in PROPERTY_NAMES
                  if pikaName in properties}
        return cls(headers=headers or None, **values)


@dataclass
class Message:
    """A message to publish: `body` (bytes or str) and `properties`."""

    body: bytes | str
    properties: BasicProperties = field(default_factory=BasicProperties)


@dataclass
class ReturnedMessage(Message):
    """A published message the broker returned."""

    methodInfo: MessageReturnInfo | None = None


@dataclass
class _AckableMessage(Message):
    """A received message; `ack()` / `nack()` settle it on the channel it came from."""

    methodInfo: Any = None
    _ackImpl: Callable[[int, bool], None] | None = field(default=None, repr=False,
                                                         compare=False)
    _nackImpl: Callable[[int, bool, bool], None] | None = field(default=None, repr=False,
                                                               compare=False)

    def ack(self, multiple: bool = False) -> None:
        """Acknowledge the message (with `multiple`, every earlier unacknowledged one too)."""
        assert self._ackImpl is not None, "message was received without acknowledgements"
        self._ackImpl(self.methodInfo.deliveryTag, multiple)

    def nack(self, multiple: bool = False, requeue: bool = False) -> None:
        """Reject the message (with `multiple`, every earlier unacknowledged one too);
        requeued if `requeue`, else dropped."""
        assert self._nackImpl is not None, "message was received without acknowledgements"
        self._nackImpl(self.methodInfo.deliveryTag, multiple, requeue)


@dataclass
class PolledMessage(_AckableMessage):
    """A message received with `getOneMessage` (`methodInfo` is a MessageGetInfo)."""


@dataclass
class ConsumerMessage(_AckableMessage):
    """A message delivered to a consumer (`methodInfo` is a MessageDeliveryInfo)."""
