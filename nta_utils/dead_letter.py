"""Dead-letter queues: where a consumer puts a message it cannot decode or process after a
bounded number of attempts, so that the messages behind it flow on.

The dead-letter queue of ``<app>.<rest>`` is ``<app>.dlq.<rest>`` (durable). A dead letter
keeps the original body, headers and properties and gets the headers ``x-dlq-queue`` (where it
came from), ``x-dlq-reason``, ``x-dlq-attempts`` and ``x-dlq-time`` (UTC, ISO 8601).

A consumer uses `DeadLetterQueue.quarantine` for a message that can never succeed (it cannot be
decoded) and `DeadLetterQueue.failed` for a processing failure that might be transient: the
message is quarantined at the `max_attempts`-th failure (counted per body in this process).
Quarantining publishes with a broker confirm, so the caller acks the original only afterwards
and nothing is lost if it crashes in between (the message is then delivered again).

`list_dead_letters`, `requeue_dead_letters` serve ``htmengine dlq``.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nta_utils.bus import Bus
from nta_utils.errors import InvalidArgumentError
from nta_utils.message_bus_types import Message

_log = logging.getLogger("nta_utils.dead_letter")

HEADER_QUEUE = "x-dlq-queue"
HEADER_REASON = "x-dlq-reason"
HEADER_ATTEMPTS = "x-dlq-attempts"
HEADER_TIME = "x-dlq-time"
DLQ_HEADERS = (HEADER_QUEUE, HEADER_REASON, HEADER_ATTEMPTS, HEADER_TIME)
DEFAULT_MAX_ATTEMPTS = 3
MAX_REASON_CHARS = 2000
FIRST_BYTES = 120
_MAX_TRACKED = 10000


def dead_letter_queue_name(queue: str) -> str:
    """``<app>.dlq.<rest>`` for a queue named ``<app>.<rest>`` (``dlq.<queue>`` without a dot)."""
    app, dot, rest = queue.partition(".")
    return f"{app}.dlq.{rest}" if dot else f"dlq.{queue}"


def message_label(message: Message) -> str:
    """The message's AMQP message_id, else ``sha1:<first 12 hex digits of its body>``."""
    messageId = message.properties.get("message_id")
    if messageId:
        return str(messageId)
    return "sha1:" + hashlib.sha1(message.body).hexdigest()[:12]


class DeadLetterQueue:
    """The dead-letter queue of one consumed queue, used through the consumer's `bus`."""

    def __init__(self, bus: Bus, queue: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 logger: logging.Logger | None = None) -> None:
        if max_attempts < 1:
            raise InvalidArgumentError(f"max_attempts must be >= 1, got {max_attempts}")
        self._bus = bus
        self.queue = queue
        self.name = dead_letter_queue_name(queue)
        self.max_attempts = max_attempts
        self._log = logger or _log
        self._attempts: OrderedDict[bytes, int] = OrderedDict()
        self.quarantined = 0

    def declare(self) -> None:
        """Declare the durable dead-letter queue."""
        self._bus.declare_queue(self.name, durable=True)

    def quarantine(self, message: Message, reason: str, attempts: int = 1) -> None:
        """Publish `message` to the dead-letter queue with `reason` (confirmed) and log it once
        with the queue, the message id and its first bytes. The caller then acks it."""
        headers = {**message.headers, HEADER_QUEUE: self.queue,
                   HEADER_REASON: reason[:MAX_REASON_CHARS], HEADER_ATTEMPTS: attempts,
                   HEADER_TIME: datetime.now(UTC).isoformat(timespec="seconds")}
        properties = {k: v for k, v in message.properties.items()
                      if k not in ("headers", "delivery_mode")}
        self.declare()
        self._bus.publish_to_queue(self.name, message.body, persistent=True, headers=headers,
                                   properties=properties)
        self._attempts.pop(hashlib.sha1(message.body).digest(), None)
        self.quarantined += 1
        self._log.error("Dead-lettered message %s of queue %s to %s after %d attempt(s): %s; "
                        "%d bytes starting %r", message_label(message), self.queue, self.name,
                        attempts, reason[:300], len(message.body), message.body[:FIRST_BYTES])

    def failed(self, message: Message, reason: str) -> bool:
        """Count one failed attempt at processing `message`; at the `max_attempts`-th it is
        quarantined and True returned (ack it), else False (process it again)."""
        key = hashlib.sha1(message.body).digest()
        attempts = self._attempts.pop(key, 0) + 1
        if attempts >= self.max_attempts:
            self.quarantine(message, reason, attempts)
            return True
        self._attempts[key] = attempts
        while len(self._attempts) > _MAX_TRACKED:
            self._attempts.popitem(last=False)
        self._log.warning("Attempt %d of %d at message %s of queue %s failed: %s",
                          attempts, self.max_attempts, message_label(message), self.queue,
                          reason[:300])
        return False


@dataclass
class DeadLetter:
    """One message of a dead-letter queue as `list_dead_letters` shows it."""

    index: int
    label: str
    queue: str
    reason: str
    attempts: int
    time: str
    body: bytes
    headers: dict[str, Any]


def _as_dead_letter(index: int, message: Message) -> DeadLetter:
    headers = message.headers
    return DeadLetter(index, message_label(message), str(headers.get(HEADER_QUEUE, "?")),
                      str(headers.get(HEADER_REASON, "?")), int(headers.get(HEADER_ATTEMPTS, 0)),
                      str(headers.get(HEADER_TIME, "?")), message.body, headers)


def list_dead_letters(bus: Bus, dlq: str) -> list[DeadLetter]:
    """Every message of dead-letter queue `dlq`, in order; they stay in the queue (taken
    unacked, then all returned: use a `bus` with no other unacked deliveries)."""
    taken: list[Message] = []
    try:
        while (message := bus.get(dlq)) is not None:
            taken.append(message)
    finally:
        bus.nack_all(requeue=True)
    return [_as_dead_letter(i, m) for i, m in enumerate(taken, start=1)]


def requeue_dead_letters(bus: Bus, dlq: str, labels: set[str] | None = None) -> int:
    """Publish the dead letters (all, or those whose label is in `labels`) back to the queue
    named in their ``x-dlq-queue`` header without the dead-letter headers, acking each after
    its confirm; the others stay (use a `bus` with no other unacked deliveries). Only the
    letters there at the start are taken: one that a live consumer dead-letters again at once
    is not requeued in a loop. Returns how many were requeued."""
    requeued = 0
    remaining = bus.message_count(dlq)   # letters dead-lettered again meanwhile wait
    try:
        while remaining > 0 and (message := bus.get(dlq)) is not None:
            remaining -= 1
            target = message.headers.get(HEADER_QUEUE)
            if not target or (labels is not None and message_label(message) not in labels):
                continue
            headers = {k: v for k, v in message.headers.items() if k not in DLQ_HEADERS}
            properties = {k: v for k, v in message.properties.items()
                          if k not in ("headers", "delivery_mode")}
            bus.publish_to_queue(str(target), message.body, persistent=True,
                                 headers=headers, properties=properties)
            bus.ack(message.delivery_tag)
            requeued += 1
    finally:
        bus.nack_all(requeue=True)
    return requeued
