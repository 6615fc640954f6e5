"""The state of the in-memory broker behind `nta_utils.stub_bus.StubBus`: queues, exchanges
and routing, plus what tests inspect (`peek`, `unacked_count`, `join`) and the simulated broker
restart (`drop_connections`). See `nta_utils.stub_bus` for the semantics."""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from nta_utils.errors import QueueNotFoundError
from nta_utils.message_bus_types import Message

__all__ = ["BrokerConnection", "BrokerExchange", "BrokerQueue", "Envelope", "StubBroker",
           "to_message"]


class BrokerConnection(Protocol):
    """What the broker asks of a connection (`StubBus`)."""

    def lose_connection(self) -> None:
        """Lose the connection as in a broker restart."""
        ...

    def unsettled(self, queue: str) -> int:
        """Deliveries of `queue` not yet settled on this connection."""
        ...


@dataclass
class Envelope:
    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]
    exchange: str
    routing_key: str
    redelivered: bool = False


@dataclass
class BrokerQueue:
    name: str
    durable: bool
    exclusive_owner: object | None
    auto_delete: bool
    arguments: dict[str, Any]
    ready: deque[Envelope] = field(default_factory=deque)
    consumers: int = 0


@dataclass
class BrokerExchange:
    name: str
    exchange_type: str
    durable: bool
    auto_delete: bool
    arguments: dict[str, Any]
    bindings: set[tuple[str, str]] = field(default_factory=set)   # (queue, routing key)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: words separated by dots, ``*`` one word, ``#`` zero or more."""
    words, keys = pattern.split("."), routing_key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(keys)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(keys) + 1))
        return j < len(keys) and words[i] in ("*", keys[j]) and match(i + 1, j + 1)

    return match(0, 0)


class StubBroker:
    """The broker's state, shared by every `StubBus` connected to it (thread-safe)."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.queues: dict[str, BrokerQueue] = {}
        self.exchanges: dict[str, BrokerExchange] = {}
        self.connections: list[BrokerConnection] = []

    # ------------------------------------------------------------------ inspection for tests

    def queue_names(self) -> list[str]:
        """Names of the existing queues, sorted."""
        with self.cond:
            return sorted(self.queues)

    def peek(self, queue: str) -> list[Message]:
        """The queue's ready messages in delivery order, left in place (tags are 0)."""
        with self.cond:
            return [to_message(envelope, 0, 0) for envelope in self.queue(queue).ready]

    def unacked_count(self, queue: str) -> int:
        """Deliveries of `queue` not yet settled, over every connection."""
        with self.cond:
            return sum(connection.unsettled(queue) for connection in self.connections)

    def join(self, queue: str, timeout: float = 10.0) -> bool:
        """Wait until `queue` has neither ready nor unsettled messages; False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue(queue).ready or self.unacked_count(queue):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
            return True

    def drop_connections(self) -> None:
        """Lose every open connection as in a broker restart (see the module docstring)."""
        with self.cond:
            for bus in list(self.connections):
                bus.lose_connection()
            self.cond.notify_all()

    # ------------------------------------------------------------------ used by StubBus

    def queue(self, name: str) -> BrokerQueue:
        queue = self.queues.get(name)
        if queue is None:
            raise QueueNotFoundError(f"queue {name!r}: not found (NOT_FOUND - no queue "
                                     f"{name!r} in the stub broker)")
        return queue

    def exchange(self, name: str) -> BrokerExchange:
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise QueueNotFoundError(f"exchange {name!r}: not found (NOT_FOUND - no exchange "
                                     f"{name!r} in the stub broker)")
        return exchange

    def route(self, exchange: str, routing_key: str) -> list[BrokerQueue]:
        if exchange == "":
            queue = self.queues.get(routing_key)
            return [queue] if queue is not None else []
        target = self.exchange(exchange)
        names = sorted({queue for queue, key in target.bindings
                        if target.exchange_type == "fanout"
                        or (target.exchange_type == "direct" and key == routing_key)
                        or (target.exchange_type == "topic"
                            and topic_matches(key, routing_key))})
        return [self.queues[name] for name in names if name in self.queues]

    def delete_queue(self, name: str) -> None:
        self.queues.pop(name, None)
        for exchange in self.exchanges.values():
            exchange.bindings = {b for b in exchange.bindings if b[0] != name}
        self.cond.notify_all()


def to_message(envelope: Envelope, tag: int, generation: int) -> Message:
    """The `Message` a consumer receives for a stored envelope."""
    return Message(body=envelope.body, headers=copy.deepcopy(envelope.headers),
                   delivery_tag=tag, redelivered=envelope.redelivered,
                   routing_key=envelope.routing_key, exchange=envelope.exchange,
                   connection_generation=generation,
                   properties=dict(envelope.properties))
