"""``htmengine send``: samples into the custom-metrics queue, as the metric listener would put
them there (plain protocol, at most MAX_BATCH_SIZE lines per message)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from htmengine.cli.series import Row
from htmengine.config import app_config
from htmengine.pipeline.plaintext import encodeBatchMessage, parsePlaintext
from htmengine.runtime.metric_listener import MAX_BATCH_SIZE
from nta_utils.message_bus import MessageBus

SOURCE = "htmengine send"


def sample_line(metric: str, value: float, epoch: int) -> str:
    """The graphite plaintext line of one sample, checked as the storer will check it
    (InvalidInputError naming the problem)."""
    line = f"{metric} {value!r} {epoch}"
    parsePlaintext(line)
    return line


def send_rows(metric: str, rows: Sequence[Row],
              progress: Callable[[int], object] = lambda _sent: None) -> int:
    """Publish the rows to the configured custom-metrics queue in batches (every line checked
    before anything is sent); `progress(n)` after each batch of n rows. Returns rows sent."""
    lines = [sample_line(metric, row.value, row.epoch) for row in rows]
    queue = app_config().get("metric_listener", "queue_name")
    with MessageBus() as bus:
        bus.declare_queue(queue, durable=True)  # as the listener declares it
        for start in range(0, len(lines), MAX_BATCH_SIZE):
            batch = lines[start:start + MAX_BATCH_SIZE]
            bus.publish_to_queue(queue, encodeBatchMessage(batch, source=SOURCE))
            progress(len(batch))
    return len(lines)
