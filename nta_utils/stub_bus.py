"""An in-memory broker for fast unit tests of service logic: `StubBroker` holds queues and
exchanges, each `StubBus` is one connection to it and implements the `nta_utils.bus.Bus`
protocol with RabbitMQ's semantics (as `MessageBus` exposes them; one conformance test runs
against both):

* default, fanout, direct and topic exchanges; mandatory publishing (`UnroutableMessageError`);
  missing queue or exchange: `QueueNotFoundError`; re-declaring with other durability, type or
  arguments, or deleting a used / non-empty queue with ``if_unused`` / ``if_empty``:
  `BrokerChannelError` 406;
* deliveries carry a tag (1, 2, ... per connection) to settle once with ack or nack; a requeued
  or never settled message (connection closed or dropped) goes back to the head of its queue
  and is delivered again with ``redelivered`` True;
* ``consume`` honours ``prefetch`` (unsettled deliveries of that consumer), yields None after
  ``inactivity_timeout`` idle seconds (publishes from other threads wake it up), and raises
  `ConsumerCancelledError` when its queue is deleted;
* `StubBroker.drop_connections` simulates a broker restart as the services see it: unsettled
  messages are requeued, a running ``consume`` raises `BusConnectionError`, settling an old tag
  raises `BusConnectionError`, and the next declare / publish / get reconnects (the
  ``connection_generation`` grows).

Difference from the real broker, by design: nothing is prefetched ahead of the consumer, so
``message_count`` during a consume counts messages the real broker would already have handed
out. Messages are not persisted (there is no restart to survive).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from typing import Any

from nta_utils.bus import Bus
from nta_utils.errors import (
    BusConnectionError,
    BusError,
    InvalidArgumentError,
    UnroutableMessageError,
)
from nta_utils.message_bus_types import (
    BrokerChannelError,
    ConsumerCancelledError,
    Message,
    OutgoingMessage,
    QueueInfo,
    UnknownDeliveryTagError,
    check_outgoing,
)
from nta_utils.stub_broker import (
    BrokerExchange,
    BrokerQueue,
    Envelope,
    StubBroker,
    to_message,
)

__all__ = ["StubBroker", "StubBus"]   # StubBroker re-exported from nta_utils.stub_broker

_PRECONDITION_FAILED = 406
_RESOURCE_LOCKED = 405
_EXCHANGE_TYPES = ("fanout", "direct", "topic")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"{kind} name must be a non-empty string, got {name!r}")


class StubBus(Bus):
    """One connection to a `StubBroker`; the in-memory implementation of `Bus`."""

    def __init__(self, broker: StubBroker) -> None:
        self._broker = broker
        self._generation = 0
        self._connected = False
        self._lost = False
        self._closed = False
        self._consuming = False
        self._next_tag = 1
        self._outstanding: dict[int, tuple[str, Envelope]] = {}

    def unsettled(self, queue: str) -> int:
        """Called by the broker: deliveries of `queue` this connection has not settled."""
        if self._lost:
            return 0
        return sum(1 for name, _envelope in self._outstanding.values() if name == queue)

    @property
    def broker(self) -> StubBroker:
        """The broker this connection talks to."""
        return self._broker

    @property
    def connection_generation(self) -> int:
        """Incremented at every (re)connection; delivery tags of older generations are void."""
        return self._generation

    def socket_fileno(self) -> int | None:
        """None: the in-process broker has no socket to wait on."""
        return None

    # ------------------------------------------------------------------ connection

    def _connect(self) -> None:
        """(Re)connect if needed; callers hold the broker lock."""
        if self._closed:
            raise BusError("StubBus is closed")
        if not self._connected or self._lost:
            self._outstanding.clear()
            self._lost = False
            self._connected = True
            self._generation += 1
            self._next_tag = 1
            if self not in self._broker.connections:
                self._broker.connections.append(self)

    def lose_connection(self) -> None:
        """Called by the broker (`StubBroker.drop_connections`): requeue what this
        connection has not settled and fail its consumer and its settling of old tags."""
        if self._connected and not self._lost:
            self._requeue_outstanding_in_tag_order(keep_tags=True)
            self._lost = True
            self._delete_exclusive_queues()

    def _requeue_outstanding_in_tag_order(self, keep_tags: bool = False) -> None:
        """Put unsettled deliveries back at the head of their queues, redelivered; with
        `keep_tags` their tags stay known (settling them then raises BusConnectionError, as
        on a real connection lost but not yet noticed)."""
        for tag in sorted(self._outstanding, reverse=True):
            name, envelope = self._outstanding[tag]
            queue = self._broker.queues.get(name)
            if queue is not None:
                envelope.redelivered = True
                queue.ready.appendleft(envelope)
        if not keep_tags:
            self._outstanding.clear()

    def _delete_exclusive_queues(self) -> None:
        for name in [n for n, q in self._broker.queues.items() if q.exclusive_owner is self]:
            self._broker.delete_queue(name)

    def close(self) -> None:
        """Close the connection; unacknowledged deliveries go back to their queues."""
        with self._broker.cond:
            if self._connected and not self._lost:
                self._requeue_outstanding_in_tag_order()
                self._delete_exclusive_queues()
            self._outstanding.clear()
            self._closed = True
            if self in self._broker.connections:
                self._broker.connections.remove(self)
            self._broker.cond.notify_all()

    def __enter__(self) -> StubBus:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ queues / exchanges

    def _owned_queue(self, name: str) -> BrokerQueue:
        queue = self._broker.queue(name)
        if queue.exclusive_owner is not None and queue.exclusive_owner is not self:
            raise BrokerChannelError(f"queue {name!r}: broker closed the channel with "
                                     f"{_RESOURCE_LOCKED} RESOURCE_LOCKED (exclusive queue of "
                                     f"another connection)", _RESOURCE_LOCKED)
        return queue

    def declare_queue(self, name: str, durable: bool = True, *, passive: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> QueueInfo:
        """Create the queue if missing; with `passive`, only check that it exists."""
        _check_name("queue", name)
        with self._broker.cond:
            self._connect()
            queue = self._broker.queues.get(name)
            if queue is None:
                if passive:
                    self._broker.queue(name)
                queue = BrokerQueue(name, durable, self if exclusive else None, auto_delete,
                               dict(arguments or {}))
                self._broker.queues[name] = queue
            else:
                self._owned_queue(name)
                if not passive and (queue.durable, queue.auto_delete, queue.arguments) != (
                        durable, auto_delete, dict(arguments or {})):
                    raise BrokerChannelError(
                        f"declare queue {name!r}: broker closed the channel with "
                        f"{_PRECONDITION_FAILED} PRECONDITION_FAILED - inequivalent arg",
                        _PRECONDITION_FAILED)
            return QueueInfo(name, len(queue.ready), queue.consumers)

    def delete_queue(self, name: str, *, if_unused: bool = False, if_empty: bool = False) -> None:
        """Delete the queue and its messages; a missing queue is not an error."""
        _check_name("queue", name)
        with self._broker.cond:
            self._connect()
            queue = self._broker.queues.get(name)
            if queue is None:
                return
            self._owned_queue(name)
            if (if_unused and queue.consumers) or (if_empty and queue.ready):
                raise BrokerChannelError(
                    f"delete queue {name!r}: broker closed the channel with "
                    f"{_PRECONDITION_FAILED} PRECONDITION_FAILED - queue in use or not empty",
                    _PRECONDITION_FAILED)
            self._broker.delete_queue(name)

    def purge_queue(self, name: str) -> int:
        """Drop the queue's ready messages; returns how many."""
        _check_name("queue", name)
        with self._broker.cond:
            self._connect()
            queue = self._owned_queue(name)
            count = len(queue.ready)
            queue.ready.clear()
            self._broker.cond.notify_all()
            return count

    def queue_exists(self, name: str) -> bool:
        """True if the queue exists."""
        _check_name("queue", name)
        with self._broker.cond:
            self._connect()
            return name in self._broker.queues

    def message_count(self, name: str) -> int:
        """Messages ready in the queue (not counting unacknowledged deliveries)."""
        _check_name("queue", name)
        with self._broker.cond:
            self._connect()
            return len(self._broker.queue(name).ready)

    def declare_fanout_exchange(self, name: str, durable: bool = True) -> None:
        """Create a fanout exchange if missing."""
        self.declare_exchange(name, "fanout", durable=durable)

    def declare_exchange(self, name: str, exchange_type: str = "fanout", durable: bool = True,
                         *, passive: bool = False, auto_delete: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        """Create an exchange of `exchange_type` (fanout, direct or topic) if missing."""
        _check_name("exchange", name)
        if exchange_type not in _EXCHANGE_TYPES:
            raise InvalidArgumentError(f"StubBus supports exchange types {_EXCHANGE_TYPES}, "
                             f"not {exchange_type!r}")
        with self._broker.cond:
            self._connect()
            exchange = self._broker.exchanges.get(name)
            if exchange is None:
                if passive:
                    self._broker.exchange(name)
                self._broker.exchanges[name] = BrokerExchange(name, exchange_type, durable,
                                                          auto_delete, dict(arguments or {}))
            elif not passive and (exchange.exchange_type, exchange.durable, exchange.auto_delete,
                                  exchange.arguments) != (exchange_type, durable, auto_delete,
                                                          dict(arguments or {})):
                raise BrokerChannelError(
                    f"declare exchange {name!r}: broker closed the channel with "
                    f"{_PRECONDITION_FAILED} PRECONDITION_FAILED - inequivalent arg",
                    _PRECONDITION_FAILED)

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        """Delete the exchange; a missing exchange is not an error."""
        _check_name("exchange", name)
        with self._broker.cond:
            self._connect()
            exchange = self._broker.exchanges.get(name)
            if exchange is None:
                return
            if if_unused and exchange.bindings:
                raise BrokerChannelError(
                    f"delete exchange {name!r}: broker closed the channel with "
                    f"{_PRECONDITION_FAILED} PRECONDITION_FAILED - exchange in use",
                    _PRECONDITION_FAILED)
            del self._broker.exchanges[name]

    def bind_queue(self, queue: str, exchange: str, routing_key: str = "",
                   arguments: dict[str, Any] | None = None) -> None:
        """Bind a queue to an exchange; QueueNotFoundError if either is missing."""
        _check_name("queue", queue)
        _check_name("exchange", exchange)
        with self._broker.cond:
            self._connect()
            self._owned_queue(queue)
            self._broker.exchange(exchange).bindings.add((queue, routing_key))

    def unbind_queue(self, queue: str, exchange: str, routing_key: str = "",
                     arguments: dict[str, Any] | None = None) -> None:
        """Remove a binding of a queue to an exchange."""
        _check_name("queue", queue)
        _check_name("exchange", exchange)
        with self._broker.cond:
            self._connect()
            self._owned_queue(queue)
            self._broker.exchange(exchange).bindings.discard((queue, routing_key))

    # ------------------------------------------------------------------ publishing

    def publish(self, exchange: str, routing_key: str, body: bytes, *, persistent: bool = True,
                headers: dict[str, Any] | None = None, mandatory: bool = True,
                properties: dict[str, Any] | None = None) -> None:
        """Route one message to the queues that take it (see the module docstring)."""
        if self.publish_many([OutgoingMessage(exchange, routing_key, body, persistent, headers,
                                              mandatory, properties)]):
            raise UnroutableMessageError(
                f"message published to exchange {exchange!r} with routing key "
                f"{routing_key!r} was returned unroutable: no queue is bound to take it")

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> list[int]:
        """Route `messages` in order (see the module docstring); returns the indexes of the
        mandatory ones no queue takes (not published)."""
        for message in messages:
            check_outgoing(message.exchange, message.routing_key, message.body,
                           message.properties)
        returned: list[int] = []
        with self._broker.cond:
            self._connect()
            for index, message in enumerate(messages):
                targets = self._broker.route(message.exchange, message.routing_key)
                if not targets and message.mandatory:
                    returned.append(index)
                stored = {"delivery_mode": 2 if message.persistent else 1,
                          **{k: v for k, v in (message.properties or {}).items()
                             if k != "headers" and v is not None}}
                for queue in targets:
                    queue.ready.append(Envelope(bytes(message.body),
                                                copy.deepcopy(message.headers or {}),
                                                dict(stored), message.exchange,
                                                message.routing_key))
            self._broker.cond.notify_all()
        return returned

    def publish_to_queue(self, queue: str, body: bytes, *, persistent: bool = True,
                         headers: dict[str, Any] | None = None, mandatory: bool = True,
                         properties: dict[str, Any] | None = None) -> None:
        """Publish straight to a queue through the default exchange."""
        _check_name("queue", queue)
        self.publish("", queue, body, persistent=persistent, headers=headers,
                     mandatory=mandatory, properties=properties)

    # ------------------------------------------------------------------ receiving

    def _deliver(self, queue: BrokerQueue, auto_ack: bool) -> Message:
        envelope = queue.ready.popleft()
        tag = self._next_tag
        self._next_tag += 1
        if not auto_ack:
            self._outstanding[tag] = (queue.name, envelope)
        return to_message(envelope, tag, self._generation)

    def get(self, queue: str) -> Message | None:
        """Take one message (to be acked or nacked), or None if the queue is empty; the
        message's `remaining` is the count of ready messages left."""
        _check_name("queue", queue)
        with self._broker.cond:
            self._connect()
            found = self._owned_queue(queue)
            if not found.ready:
                return None
            message = self._deliver(found, False)
            message.remaining = len(found.ready)
            return message

    def consume(self, queue: str, prefetch: int = 100,
                inactivity_timeout: float | None = None,
                auto_ack: bool = False) -> Iterator[Message | None]:
        """Yield messages as they arrive (at most `prefetch` unsettled); None after
        `inactivity_timeout` idle seconds. BusConnectionError when the connection is lost,
        ConsumerCancelledError when the queue is deleted."""
        _check_name("queue", queue)
        if prefetch < 0:
            raise InvalidArgumentError(f"prefetch must be >= 0 (0 = unlimited), got {prefetch}")
        if inactivity_timeout is not None and inactivity_timeout <= 0:
            raise InvalidArgumentError(f"inactivity_timeout must be positive, got {inactivity_timeout}")
        if self._consuming:
            raise BusError("this StubBus already has an active consumer; "
                           "close it first or use another StubBus")
        return self._consume(queue, prefetch, inactivity_timeout, auto_ack)

    def _consume(self, name: str, prefetch: int, inactivity_timeout: float | None,
                 auto_ack: bool) -> Iterator[Message | None]:
        cond = self._broker.cond
        with cond:
            self._connect()
            self._owned_queue(name).consumers += 1
            generation = self._generation
        self._consuming = True
        mine: set[int] = set()
        try:
            while True:
                with cond:
                    message = self._next_delivery(name, generation, prefetch, mine,
                                                  inactivity_timeout, auto_ack)
                yield message
        finally:
            self._consuming = False
            with cond:
                queue = self._broker.queues.get(name)
                if queue is not None and self._generation == generation:
                    queue.consumers -= 1
                    if queue.auto_delete and queue.consumers == 0:
                        self._broker.delete_queue(name)

    def _next_delivery(self, name: str, generation: int, prefetch: int, mine: set[int],
                       inactivity_timeout: float | None, auto_ack: bool) -> Message | None:
        """Under the broker lock: the next message for a consumer, or None after the
        inactivity timeout."""
        deadline = None if inactivity_timeout is None else time.monotonic() + inactivity_timeout
        while True:
            if self._closed or self._lost or self._generation != generation:
                raise BusConnectionError(f"consume queue {name!r}: connection to the stub "
                                         f"broker was lost")
            queue = self._broker.queues.get(name)
            if queue is None:
                raise ConsumerCancelledError(f"consume queue {name!r}: broker cancelled the "
                                             f"consumer (queue deleted?)")
            mine &= set(self._outstanding)
            if queue.ready and (prefetch == 0 or len(mine) < prefetch):
                message = self._deliver(queue, auto_ack)
                if not auto_ack:
                    mine.add(message.delivery_tag)
                return message
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._broker.cond.wait(remaining)

    def _check_channel(self, verb: str) -> None:
        """BusConnectionError if the connection that delivered the outstanding tags is gone;
        callers hold the broker lock."""
        if self._closed or self._lost:
            self._outstanding.clear()
            raise BusConnectionError(
                f"cannot {verb}: the channel that delivered the message is gone; the broker "
                f"will redeliver it")

    def _settle(self, tags: list[int], requeue: bool | None) -> None:
        """Ack (requeue None) or nack the delivery `tags`; callers hold the broker lock."""
        for tag in sorted(tags, reverse=True):
            name, envelope = self._outstanding.pop(tag)
            queue = self._broker.queues.get(name)
            if requeue and queue is not None:
                envelope.redelivered = True
                queue.ready.appendleft(envelope)
        self._broker.cond.notify_all()

    def _tags_up_to(self, verb: str, delivery_tag: int, multiple: bool) -> list[int]:
        self._check_channel(f"{verb} delivery tag {delivery_tag}")
        if delivery_tag not in self._outstanding:
            raise UnknownDeliveryTagError(
                f"cannot {verb} delivery tag {delivery_tag}: not outstanding on this "
                f"connection (already settled, or delivered on a connection since lost)")
        return [t for t in self._outstanding if t <= delivery_tag] if multiple else [delivery_tag]

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge a delivery (with `multiple`, all outstanding up to and including it)."""
        with self._broker.cond:
            self._settle(self._tags_up_to("ack", delivery_tag, multiple), None)

    def ack_all(self) -> None:
        """Acknowledge every outstanding delivery of this connection (none: no-op)."""
        with self._broker.cond:
            if self._outstanding:
                self._check_channel("ack all")
                self._settle(list(self._outstanding), None)

    def nack(self, delivery_tag: int, requeue: bool = True) -> None:
        """Reject a delivery; requeued (at the head, redelivered) unless `requeue` is False."""
        with self._broker.cond:
            self._settle(self._tags_up_to("nack", delivery_tag, False), requeue)

    def nack_all(self, requeue: bool = True) -> None:
        """Reject every outstanding delivery of this connection."""
        with self._broker.cond:
            if self._outstanding:
                self._check_channel("nack all")
                self._settle(list(self._outstanding), requeue)
