"""The message bus's value types and errors: connection parameters, received messages, queue
declaration results, the messages of a batched publish, and the errors MessageBus adds to the
`nta_utils.errors.BusError` tree. Re-exported by `nta_utils.message_bus`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pika

from nta_utils.config import Config
from nta_utils.errors import ArgumentTypeError, BusError, InvalidArgumentError, QueueNotFoundError

RABBITMQ_CONF = "rabbitmq.conf"


class BrokerChannelError(BusError):
    """The broker closed a channel for a reason other than a missing entity (e.g. 406
    PRECONDITION_FAILED when re-declaring a queue with different durability)."""

    def __init__(self, message: str, reply_code: int) -> None:
        super().__init__(message)
        self.reply_code = reply_code


class ConsumerCancelledError(QueueNotFoundError):
    """The broker cancelled a consumer, normally because its queue was deleted."""


class UnknownDeliveryTagError(BusError):
    """ack/nack of a delivery tag that is not outstanding on the current channel: already
    acknowledged, or delivered on a connection that has since been lost (the broker will
    redeliver it)."""


@dataclass
class AmqpConnectionParams:
    """Where and how to connect to RabbitMQ."""

    host: str = "127.0.0.1"
    port: int = 5672
    virtual_host: str = "/"
    user: str = "guest"
    password: str = "guest"
    # Heartbeats are only answered while inside pika calls; a generous interval lets a
    # consumer spend minutes on one batch without the broker dropping the connection.
    heartbeat: int = 600
    socket_timeout: float = 5.0
    blocked_connection_timeout: float = 300.0

    @classmethod
    def from_config(cls, config: Config | None = None) -> AmqpConnectionParams:
        """Read [connection] host/port/virtual_host and [credentials] user/password from
        rabbitmq.conf (in $APPLICATION_CONFIG_PATH unless a Config is given)."""
        if config is None:
            config = Config(RABBITMQ_CONF)
        return cls(
            host=config.get("connection", "host"),
            port=config.getint("connection", "port"),
            virtual_host=config.get("connection", "virtual_host"),
            user=config.get("credentials", "user"),
            password=config.get("credentials", "password"),
            heartbeat=config.getint("connection", "heartbeat", fallback=cls.heartbeat),
        )

    def to_pika(self) -> pika.ConnectionParameters:
        """The equivalent pika parameters (one connection attempt; MessageBus retries)."""
        return pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.virtual_host,
            credentials=pika.PlainCredentials(self.user, self.password),
            heartbeat=self.heartbeat,
            socket_timeout=self.socket_timeout,
            stack_timeout=self.socket_timeout * 2,
            blocked_connection_timeout=self.blocked_connection_timeout,
            connection_attempts=1,
            retry_delay=0,
        )

    def describe(self) -> str:
        """host:port/vhost as user, for error messages."""
        return f"amqp://{self.user}@{self.host}:{self.port}/{self.virtual_host}"


@dataclass
class Message:
    """A message taken from a queue; acknowledge it with `MessageBus.ack(delivery_tag)`."""

    body: bytes
    headers: dict[str, Any]
    delivery_tag: int
    redelivered: bool
    routing_key: str
    exchange: str = ""
    # MessageBus.connection_generation when delivered: tags of older generations are void.
    connection_generation: int = field(default=0, compare=False)
    # The other AMQP basic properties that were set (pika names: content_type,
    # delivery_mode, correlation_id, message_id, timestamp, ...).
    properties: dict[str, Any] = field(default_factory=dict, compare=False)
    # `get` only: ready messages left in the queue once this one was taken (basic.get-ok's
    # message-count); None when unknown (consumed messages).
    remaining: int | None = field(default=None, compare=False)


@dataclass
class QueueInfo:
    """What the broker reports when a queue is declared."""

    name: str
    message_count: int
    consumer_count: int


PIKA_PROPERTY_NAMES = ("content_type", "content_encoding", "delivery_mode", "priority",
                        "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                        "type", "user_id", "app_id", "cluster_id")


@dataclass(frozen=True)
class OutgoingMessage:
    """One message of a `Bus.publish_many` batch (the arguments of `Bus.publish`)."""

    exchange: str
    routing_key: str
    body: bytes
    persistent: bool = True
    headers: dict[str, Any] | None = None
    mandatory: bool = True
    properties: dict[str, Any] | None = None


def check_outgoing(exchange: str, routing_key: str, body: bytes,
                   properties: dict[str, Any] | None) -> None:
    """The argument checks of a publish (both buses): bytes body, string exchange and
    routing key, known property names."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise ArgumentTypeError(f"message body must be bytes, got {type(body).__name__}")
    if not isinstance(exchange, str) or not isinstance(routing_key, str):
        raise InvalidArgumentError(f"exchange and routing_key must be strings, got "
                                   f"{exchange!r}, {routing_key!r}")
    unknown = set(properties or {}) - set(PIKA_PROPERTY_NAMES) - {"headers"}
    if unknown:
        raise InvalidArgumentError(f"unknown message properties {sorted(unknown)}; known: "
                                   f"{list(PIKA_PROPERTY_NAMES)}")
