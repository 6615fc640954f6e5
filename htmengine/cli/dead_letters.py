"""``htmengine dlq``: the dead-letter queues of the engine's queues (`nta_utils.dead_letter`):
list them with their reasons, show one letter, requeue letters to the queue they came from."""

from __future__ import annotations

from htmengine.config import app_config
from nta_utils.dead_letter import (
    DeadLetter,
    dead_letter_queue_name,
    list_dead_letters,
    requeue_dead_letters,
)
from nta_utils.message_bus import MessageBus

SHOW_BYTES = 2000


def default_queue() -> str:
    """The queue whose dead letters the commands handle by default: the custom-metrics queue
    (the metric storer's input)."""
    return str(app_config().get("metric_listener", "queue_name"))


def list_lines(queue: str) -> list[str]:
    """One line per dead letter of `queue`: index, id, attempts, time, size, reason."""
    dlq = dead_letter_queue_name(queue)
    with MessageBus() as bus:
        if not bus.queue_exists(dlq):
            return [f"{dlq}: no dead letters (the queue does not exist)"]
        letters = list_dead_letters(bus, dlq)
    lines = [f"{dlq}: {len(letters)} dead letter{'s' if len(letters) != 1 else ''}"]
    lines += [f"{d.index:>4}  {d.label}  attempts={d.attempts}  {d.time}  {len(d.body)} bytes  "
              f"{d.reason[:120]}" for d in letters]
    return lines


def _letter(queue: str, which: str) -> DeadLetter:
    with MessageBus() as bus:
        letters = list_dead_letters(bus, dead_letter_queue_name(queue))
    for letter in letters:
        if which in (str(letter.index), letter.label):
            return letter
    raise LookupError(f"no dead letter {which!r} in {dead_letter_queue_name(queue)} "
                      f"({len(letters)} letters; see `htmengine dlq list`)")


def show_lines(queue: str, which: str) -> list[str]:
    """Headers and the first SHOW_BYTES bytes of the dead letter with index or id `which`."""
    letter = _letter(queue, which)
    lines = [f"id: {letter.label}", f"from queue: {letter.queue}",
             f"dead-lettered: {letter.time} after {letter.attempts} attempt(s)",
             f"reason: {letter.reason}", f"size: {len(letter.body)} bytes"]
    lines += [f"header {k}: {v!r}" for k, v in sorted(letter.headers.items())
              if not k.startswith("x-dlq-")]
    lines.append(f"body: {letter.body[:SHOW_BYTES]!r}"
                 + (" ..." if len(letter.body) > SHOW_BYTES else ""))
    return lines


def requeue(queue: str, which: list[str]) -> int:
    """Requeue the dead letters of `queue` named by index or id in `which` (all if empty)."""
    labels = {_letter(queue, w).label for w in which} if which else None
    with MessageBus() as bus:
        return requeue_dead_letters(bus, dead_letter_queue_name(queue), labels)
