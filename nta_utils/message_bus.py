"""RabbitMQ access for the engine's services: durable queues, fanout exchanges, publishing with
publisher confirms and mandatory routing, polling and consuming with explicit acks.

One `MessageBus` per thread (pika's BlockingConnection is not thread-safe). Message bodies are
bytes; callers encode and decode. pika exceptions never leave this module: they are translated
into the `nta_utils.errors.BusError` tree.

Channels: declarations and publishing use one channel in confirm mode; `get`/`consume`/`ack`/
`nack` use a second channel so that a broker error on the first (e.g. publishing to a missing
exchange) does not drop unacknowledged deliveries; `publish_many` uses a third channel in
transaction mode (one commit per batch); existence probes use a throw-away channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pika
import pika.exceptions as pex
from pika.adapters.blocking_connection import BlockingChannel

from nta_utils.bus import Bus
from nta_utils.bus_connection import CONNECTION_LOST_ERRORS, BusConnection
from nta_utils.errors import (
    BusConnectionError,
    BusError,
    InvalidArgumentError,
    MessageNackedError,
    QueueNotFoundError,
    UnroutableMessageError,
)
from nta_utils.message_bus_types import (
    PIKA_PROPERTY_NAMES,
    RABBITMQ_CONF,
    AmqpConnectionParams,
    BrokerChannelError,
    ConsumerCancelledError,
    Message,
    OutgoingMessage,
    QueueInfo,
    UnknownDeliveryTagError,
    check_outgoing,
)

__all__ = ["RABBITMQ_CONF", "AmqpConnectionParams", "BrokerChannelError", "Bus",
           "ConsumerCancelledError", "Message", "MessageBus", "OutgoingMessage", "QueueInfo",
           "UnknownDeliveryTagError"]

_log = logging.getLogger(__name__)


class MessageBus(BusConnection, Bus):
    """A connection to RabbitMQ with reconnect-and-retry for declare/publish/get; the real
    implementation of the `nta_utils.bus.Bus` protocol.

    Connects lazily. After connection loss, declare/publish/get reconnect with exponential
    back-off (at most `max_attempts` attempts within `retry_timeout` seconds), then raise
    BusConnectionError. A `consume` generator raises BusConnectionError instead; the caller
    restarts it and the broker redelivers what was not acknowledged.
    """

    def __enter__(self) -> MessageBus:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ queues / exchanges

    @staticmethod
    def _check_name(kind: str, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"{kind} name must be a non-empty string, got {name!r}")

    def declare_queue(self, name: str, durable: bool = True, *, passive: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> QueueInfo:
        """Create the queue if missing (by default not exclusive, not auto-deleted); with
        `passive`, only check that it exists (QueueNotFoundError if not). Returns the queue's
        name and counts."""
        self._check_name("queue", name)
        frame = self._call(f"declare queue {name!r}", lambda: self._get_ops_channel().queue_declare(
            queue=name, passive=passive, durable=durable, exclusive=exclusive,
            auto_delete=auto_delete, arguments=arguments))
        return QueueInfo(str(frame.method.queue), int(frame.method.message_count),
                         int(frame.method.consumer_count))

    def delete_queue(self, name: str, *, if_unused: bool = False, if_empty: bool = False) -> None:
        """Delete the queue and its messages; a missing queue is not an error."""
        self._check_name("queue", name)
        try:
            self._call(f"delete queue {name!r}",
                       lambda: self._get_ops_channel().queue_delete(
                           queue=name, if_unused=if_unused, if_empty=if_empty))
        except QueueNotFoundError:
            pass

    def purge_queue(self, name: str) -> int:
        """Drop the queue's ready messages; returns how many. QueueNotFoundError if missing."""
        self._check_name("queue", name)
        frame = self._call(f"purge queue {name!r}",
                           lambda: self._get_ops_channel().queue_purge(queue=name))
        return int(frame.method.message_count)

    def _probe_queue(self, name: str) -> int:
        """Passive declare on a throw-away channel: message count, or QueueNotFoundError."""
        def action() -> int:
            channel = self._connect().channel()
            try:
                frame = channel.queue_declare(queue=name, passive=True)
            finally:
                if channel.is_open:
                    channel.close()
            return int(frame.method.message_count)
        return self._call(f"queue {name!r}", action)

    def queue_exists(self, name: str) -> bool:
        """True if the queue exists."""
        self._check_name("queue", name)
        try:
            self._probe_queue(name)
        except QueueNotFoundError:
            return False
        return True

    def message_count(self, name: str) -> int:
        """Messages ready in the queue (not counting unacknowledged deliveries)."""
        self._check_name("queue", name)
        return self._probe_queue(name)

    def declare_fanout_exchange(self, name: str, durable: bool = True) -> None:
        """Create a fanout exchange if missing."""
        self.declare_exchange(name, "fanout", durable=durable)

    def declare_exchange(self, name: str, exchange_type: str = "fanout", durable: bool = True, *,
                         passive: bool = False, auto_delete: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        """Create an exchange of `exchange_type` (fanout, direct, topic, headers) if missing;
        with `passive`, only check that it exists (QueueNotFoundError if not)."""
        self._check_name("exchange", name)
        self._call(f"declare exchange {name!r}",
                   lambda: self._get_ops_channel().exchange_declare(
                       exchange=name, exchange_type=exchange_type, passive=passive,
                       durable=durable, auto_delete=auto_delete, arguments=arguments))

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        """Delete the exchange; a missing exchange is not an error."""
        self._check_name("exchange", name)
        try:
            self._call(f"delete exchange {name!r}",
                       lambda: self._get_ops_channel().exchange_delete(
                           exchange=name, if_unused=if_unused))
        except QueueNotFoundError:
            pass

    def bind_queue(self, queue: str, exchange: str, routing_key: str = "",
                   arguments: dict[str, Any] | None = None) -> None:
        """Bind a queue to an exchange; QueueNotFoundError if either is missing."""
        self._check_name("queue", queue)
        self._check_name("exchange", exchange)
        self._call(f"bind queue {queue!r} to exchange {exchange!r}",
                   lambda: self._get_ops_channel().queue_bind(
                       queue=queue, exchange=exchange, routing_key=routing_key,
                       arguments=arguments))

    def unbind_queue(self, queue: str, exchange: str, routing_key: str = "",
                     arguments: dict[str, Any] | None = None) -> None:
        """Remove a binding of a queue to an exchange."""
        self._check_name("queue", queue)
        self._check_name("exchange", exchange)
        self._call(f"unbind queue {queue!r} from exchange {exchange!r}",
                   lambda: self._get_ops_channel().queue_unbind(
                       queue=queue, exchange=exchange, routing_key=routing_key,
                       arguments=arguments))

    # ------------------------------------------------------------------ publishing

    def publish(self, exchange: str, routing_key: str, body: bytes, *, persistent: bool = True,
                headers: dict[str, Any] | None = None, mandatory: bool = True,
                properties: dict[str, Any] | None = None) -> None:
        """Publish and wait for the broker's confirm. `properties` sets other AMQP basic
        properties by their pika names (content_type, correlation_id, message_id, ...).

        Raises UnroutableMessageError if `mandatory` and no queue takes the message,
        MessageNackedError if the broker refuses it, QueueNotFoundError if the exchange is
        missing. A retry after connection loss may deliver the message twice (at least once).
        """
        check_outgoing(exchange, routing_key, body, properties)
        basicProperties = _basic_properties(persistent, headers, properties)
        payload = bytes(body)
        where = f"exchange {exchange!r} with routing key {routing_key!r}"

        def action() -> None:
            try:
                self._get_ops_channel().basic_publish(
                    exchange=exchange, routing_key=routing_key, body=payload,
                    properties=basicProperties, mandatory=mandatory)
            except pex.UnroutableError as exc:
                raise UnroutableMessageError(
                    f"message published to {where} was returned unroutable: no queue is "
                    f"bound to take it") from exc
            except pex.NackError as exc:
                raise MessageNackedError(
                    f"broker refused (nacked) message published to {where}") from exc

        self._call(f"publish to {where}", action)

    def publish_to_queue(self, queue: str, body: bytes, *, persistent: bool = True,
                         headers: dict[str, Any] | None = None, mandatory: bool = True,
                         properties: dict[str, Any] | None = None) -> None:
        """Publish straight to a queue through the default exchange (unroutable if the queue
        does not exist)."""
        self._check_name("queue", queue)
        self.publish("", queue, body, persistent=persistent, headers=headers,
                     mandatory=mandatory, properties=properties)

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> list[int]:
        """Publish `messages` in order in one AMQP transaction: the commit returns once the
        broker has them all (persistent ones on disk in durable queues, as a publisher
        confirm), one wait per batch instead of one per message. Returns the indexes of the
        mandatory messages returned unroutable (the broker returns them before the commit
        answer). A missing exchange raises QueueNotFoundError; a retry after connection loss
        may deliver some of them twice (at least once)."""
        for message in messages:
            check_outgoing(message.exchange, message.routing_key, message.body,
                           message.properties)
        if not messages:
            return []
        prepared = [(message, _basic_properties(message.persistent, message.headers,
                                                message.properties), bytes(message.body))
                    for message in messages]

        def action() -> list[int]:
            channel = self._get_tx_channel()
            self._returned.clear()
            for message, properties, body in prepared:
                channel.basic_publish(exchange=message.exchange,
                                      routing_key=message.routing_key, body=body,
                                      properties=properties, mandatory=message.mandatory)
            channel.tx_commit()
            self._connect().process_data_events(0)    # dispatches the returns received
            returned, self._returned = self._returned, []
            return _returned_indexes(messages, returned)

        return self._call(f"publish {len(messages)} messages", action)

    # ------------------------------------------------------------------ receiving

    def _to_message(self, method: Any, properties: Any, body: bytes) -> Message:
        self._outstanding.add(method.delivery_tag)
        return Message(
            body=bytes(body), headers=dict(properties.headers or {}),
            delivery_tag=method.delivery_tag, redelivered=bool(method.redelivered),
            routing_key=method.routing_key, exchange=method.exchange,
            connection_generation=self._generation,
            properties={name: getattr(properties, name) for name in PIKA_PROPERTY_NAMES
                        if getattr(properties, name, None) is not None})

    def get(self, queue: str) -> Message | None:
        """Take one message (to be acked or nacked), or None if the queue is empty; the
        message's `remaining` is the count of ready messages the broker had left."""
        self._check_name("queue", queue)

        def action() -> Message | None:
            method, properties, body = self._get_delivery_channel().basic_get(
                queue=queue, auto_ack=False)
            if method is None:
                return None
            message = self._to_message(method, properties, body)
            message.remaining = method.message_count
            return message

        return self._call(f"get from queue {queue!r}", action)

    def consume(self, queue: str, prefetch: int = 100,
                inactivity_timeout: float | None = None,
                auto_ack: bool = False) -> Iterator[Message | None]:
        """Yield messages as they arrive (at most `prefetch` unacknowledged at a time); yield
        None after `inactivity_timeout` seconds without one. With `auto_ack` the broker
        considers messages acknowledged once delivered (they must not be acked). Raises
        BusConnectionError on connection loss, ConsumerCancelledError if the broker cancels
        the consumer."""
        self._check_name("queue", queue)
        if prefetch < 0:
            raise InvalidArgumentError(f"prefetch must be >= 0 (0 = unlimited), got {prefetch}")
        if inactivity_timeout is not None and inactivity_timeout <= 0:
            raise InvalidArgumentError(f"inactivity_timeout must be positive, got {inactivity_timeout}")
        if self._consuming:
            raise BusError("this MessageBus already has an active consumer; "
                           "close it first or use another MessageBus")
        what = f"consume queue {queue!r}"

        def setup() -> BlockingChannel:
            channel = self._get_delivery_channel()
            channel.basic_qos(prefetch_count=prefetch)
            return channel

        channel = self._call(what, setup)
        generation = self._generation
        source = channel.consume(queue, auto_ack=auto_ack, inactivity_timeout=inactivity_timeout)
        self._consuming = True
        try:
            while True:
                if self._generation != generation or not channel.is_open:
                    # another operation on this bus found the connection lost (and maybe
                    # reconnected): this consumer's channel is gone with it
                    raise BusConnectionError(
                        f"{what}: connection to {self._params.describe()} was lost")
                try:
                    method, properties, body = next(source)
                except StopIteration:
                    raise ConsumerCancelledError(
                        f"{what}: broker cancelled the consumer (queue deleted?)") from None
                except pex.ChannelClosedByBroker as exc:
                    raise self._translate_channel_closed(exc, what) from exc
                except CONNECTION_LOST_ERRORS as exc:
                    if self._generation == generation:  # not already replaced by a reconnect
                        self._reset_connection()
                    self._outage.lost(exc)
                    raise BusConnectionError(
                        f"{what}: connection to {self._params.describe()} lost: {exc!r}"
                    ) from exc
                if method is None:
                    yield None
                else:
                    message = self._to_message(method, properties, body)
                    if auto_ack:
                        self._outstanding.discard(method.delivery_tag)
                    yield message
        finally:
            self._consuming = False
            if self._delivery_channel is channel and channel is not None and channel.is_open:
                try:
                    channel.cancel()
                except Exception:  # the connection may be going away
                    _log.debug("Ignoring error while cancelling consumer", exc_info=True)
            source.close()

    def _settle(self, verb: str, delivery_tag: int, multiple: bool,
                send: Callable[[BlockingChannel], None]) -> None:
        if delivery_tag not in self._outstanding:
            raise UnknownDeliveryTagError(
                f"cannot {verb} delivery tag {delivery_tag}: not outstanding on this "
                f"connection (already settled, or delivered on a connection since lost)")
        channel = self._delivery_channel
        if channel is None or not channel.is_open:
            self._outstanding.clear()
            raise BusConnectionError(
                f"cannot {verb} delivery tag {delivery_tag}: the channel that delivered it "
                f"is gone; the broker will redeliver the message")
        try:
            send(channel)
        except pex.ChannelClosedByBroker as exc:
            raise self._translate_channel_closed(exc, f"{verb} {delivery_tag}") from exc
        except CONNECTION_LOST_ERRORS as exc:
            self._reset_connection()
            raise BusConnectionError(
                f"cannot {verb} delivery tag {delivery_tag}: connection lost ({exc!r}); "
                f"the broker will redeliver the message") from exc
        if multiple:
            self._outstanding = {tag for tag in self._outstanding if tag > delivery_tag}
        else:
            self._outstanding.discard(delivery_tag)

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge a delivery (with `multiple`, all outstanding up to and including it)."""
        self._settle("ack", delivery_tag, multiple,
                     lambda ch: ch.basic_ack(delivery_tag=delivery_tag, multiple=multiple))

    def ack_all(self) -> None:
        """Acknowledge every outstanding delivery of this connection (none: no-op)."""
        if self._outstanding:
            self.ack(max(self._outstanding), multiple=True)

    def nack_all(self, requeue: bool = True) -> None:
        """Reject every outstanding delivery of this connection (requeued unless `requeue`
        is False)."""
        if self._outstanding:
            last = max(self._outstanding)
            self._settle("nack", last, True,
                         lambda ch: ch.basic_nack(delivery_tag=last, multiple=True,
                                                  requeue=requeue))

    def nack(self, delivery_tag: int, requeue: bool = True) -> None:
        """Reject a delivery; requeued unless `requeue` is False (then it is dropped)."""
        self._settle("nack", delivery_tag, False,
                     lambda ch: ch.basic_nack(delivery_tag=delivery_tag, multiple=False,
                                              requeue=requeue))


def _basic_properties(persistent: bool, headers: dict[str, Any] | None,
                      properties: dict[str, Any] | None) -> pika.BasicProperties:
    """The pika properties of a publish (checked by `check_outgoing`)."""
    return pika.BasicProperties(**{
        "delivery_mode": (pika.DeliveryMode.Persistent if persistent
                          else pika.DeliveryMode.Transient),
        **(properties or {}),
        "headers": headers or None})


def _returned_indexes(messages: Sequence[OutgoingMessage],
                      returned: list[Any]) -> list[int]:
    """The indexes in `messages` of the `returned` ones (Basic.Return methods, in publish
    order): each matched to the next mandatory message with its exchange and routing key."""
    indexes: list[int] = []
    position = 0
    for method in returned:
        while position < len(messages):
            message = messages[position]
            position += 1
            if (message.mandatory and message.exchange == method.exchange
                    and message.routing_key == method.routing_key):
                indexes.append(position - 1)
                break
    return indexes
