"""The `Bus` protocol: what the engine's services and tools use of a message broker.

Two implementations: `nta_utils.message_bus.MessageBus` (RabbitMQ through pika) and
`nta_utils.stub_bus.StubBus` (in memory, for fast unit tests of service logic). Both follow the
same contract, checked by one conformance test run against each:

* queues and exchanges are created by ``declare_*`` (idempotent; re-declaring with different
  durability or exchange type raises `BrokerChannelError` with 406), deleted by ``delete_*``
  (a missing one is not an error); using a missing one raises `QueueNotFoundError`;
* ``publish`` (and ``publish_many``, a batch waited for once) routes through an exchange (fanout:
  every bound queue; direct: the bindings with the same routing key; the default exchange ``""``:
  the queue named by the routing key); a ``mandatory`` message that reaches no queue raises
  `UnroutableMessageError`;
* ``get`` and ``consume`` hand out `Message` objects with a delivery tag that must be settled
  once with ``ack`` or ``nack`` (`UnknownDeliveryTagError` otherwise); a nacked (requeued) or
  never settled message (connection closed) is delivered again with ``redelivered`` True;
* message bodies are bytes; headers and basic properties travel with them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from nta_utils.message_bus_types import Message, OutgoingMessage, QueueInfo

__all__ = ["Bus"]


@runtime_checkable
class Bus(Protocol):
    """A connection to a message broker (one per thread); a context manager that closes it."""

    @property
    def connection_generation(self) -> int:
        """Incremented at every (re)connection; delivery tags of older generations are void."""
        ...

    def socket_fileno(self) -> int | None:
        """The broker connection's socket descriptor to wait on with `select` (None when
        there is none: not connected, or an in-process bus)."""
        ...

    def close(self) -> None:
        """Close the connection; unacknowledged deliveries go back to their queues."""
        ...

    def __enter__(self) -> Bus:
        ...

    def __exit__(self, *exc_info: Any) -> None:
        ...

    def declare_queue(self, name: str, durable: bool = True, *, passive: bool = False,
                      exclusive: bool = False, auto_delete: bool = False,
                      arguments: dict[str, Any] | None = None) -> QueueInfo:
        """Create the queue if missing (with `passive`, only check that it exists)."""
        ...

    def delete_queue(self, name: str, *, if_unused: bool = False,
                     if_empty: bool = False) -> None:
        """Delete the queue and its messages; a missing queue is not an error."""
        ...

    def purge_queue(self, name: str) -> int:
        """Drop the queue's ready messages; returns how many."""
        ...

    def queue_exists(self, name: str) -> bool:
        """True if the queue exists."""
        ...

    def message_count(self, name: str) -> int:
        """Messages ready in the queue (not counting unacknowledged deliveries)."""
        ...

    def declare_fanout_exchange(self, name: str, durable: bool = True) -> None:
        """Create a fanout exchange if missing."""
        ...

    def declare_exchange(self, name: str, exchange_type: str = "fanout", durable: bool = True,
                         *, passive: bool = False, auto_delete: bool = False,
                         arguments: dict[str, Any] | None = None) -> None:
        """Create an exchange of `exchange_type` if missing."""
        ...

    def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        """Delete the exchange; a missing exchange is not an error."""
        ...

    def bind_queue(self, queue: str, exchange: str, routing_key: str = "",
                   arguments: dict[str, Any] | None = None) -> None:
        """Bind a queue to an exchange."""
        ...

    def unbind_queue(self, queue: str, exchange: str, routing_key: str = "",
                     arguments: dict[str, Any] | None = None) -> None:
        """Remove a binding of a queue to an exchange."""
        ...

    def publish(self, exchange: str, routing_key: str, body: bytes, *, persistent: bool = True,
                headers: dict[str, Any] | None = None, mandatory: bool = True,
                properties: dict[str, Any] | None = None) -> None:
        """Publish one message (confirmed by the broker before this returns)."""
        ...

    def publish_to_queue(self, queue: str, body: bytes, *, persistent: bool = True,
                         headers: dict[str, Any] | None = None, mandatory: bool = True,
                         properties: dict[str, Any] | None = None) -> None:
        """Publish straight to a queue through the default exchange."""
        ...

    def publish_many(self, messages: Sequence[OutgoingMessage]) -> list[int]:
        """Publish `messages` in their order and wait for the broker once for them all (as
        `publish` does for one: durable in their queues when this returns). Returns the
        indexes of the mandatory messages returned unroutable (not published); the others
        are published. A missing exchange raises `QueueNotFoundError` and a broker refusal
        `MessageNackedError`: then any of the batch may have been published."""
        ...

    def get(self, queue: str) -> Message | None:
        """Take one message (to be acked or nacked), or None if the queue is empty; its
        `remaining` counts the ready messages left (None if the broker does not say)."""
        ...

    def consume(self, queue: str, prefetch: int = 100,
                inactivity_timeout: float | None = None,
                auto_ack: bool = False) -> Iterator[Message | None]:
        """Yield messages as they arrive, None after `inactivity_timeout` idle seconds."""
        ...

    def ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """Acknowledge a delivery (with `multiple`, all outstanding up to and including it)."""
        ...

    def ack_all(self) -> None:
        """Acknowledge every outstanding delivery of this connection."""
        ...

    def nack(self, delivery_tag: int, requeue: bool = True) -> None:
        """Reject a delivery; requeued unless `requeue` is False (then it is dropped)."""
        ...

    def nack_all(self, requeue: bool = True) -> None:
        """Reject every outstanding delivery of this connection."""
        ...
