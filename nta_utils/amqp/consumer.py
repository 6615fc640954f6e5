"""A consumer created by `SynchronousAmqpClient.createConsumer`, and the event that the broker
cancelled one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Consumer:
    """`tag`: the consumer tag. `cancel()` stops deliveries to it."""

    tag: str
    queue: str
    _cancelImpl: Callable[[str], list[Any]] = field(repr=False)

    def cancel(self) -> list[Any]:
        """Cancel the consumer; returns the messages delivered to it but not yet read (none:
        unread deliveries go back to the queue)."""
        return self._cancelImpl(self.tag)


@dataclass
class ConsumerCancellation:
    """Event from `readEvents()`: the broker cancelled consumer `consumerTag` (normally
    because its queue was deleted)."""

    consumerTag: str
