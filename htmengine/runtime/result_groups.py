"""Groups of the model result batches at hand, for the anomaly service to apply in one
transaction: the batches arriving within GATHER_SECONDS of each other, at most
MAX_GROUP_BATCHES; when none is at hand, an idle wait on the broker's socket (so an idle
service does not poll)."""

from __future__ import annotations

import select
from collections.abc import Iterator

from htmengine.exceptions import InvalidInputError
from htmengine.model_swapper.model_swapper_interface import (
    ConsumedResultBatch,
    ModelSwapperInterface,
)
from htmengine.runtime.service_support import StopFlag
from nta_utils.bus import Bus

MAX_GROUP_BATCHES = 50
GATHER_SECONDS = 0.002
IDLE_WAIT_SECONDS = 0.5


def result_groups(swapper: ModelSwapperInterface, stop: StopFlag,
                  max_batches: int = MAX_GROUP_BATCHES) -> Iterator[list[ConsumedResultBatch]]:
    """Yield lists of 1 to `max_batches` consumed result batches, in queue order, until
    `stop` is set (checked between groups). The consumer prefetches twice `max_batches`;
    its bus errors (BusConnectionError on a lost connection) propagate."""
    if max_batches < 1:
        raise InvalidInputError(f"max_batches must be >= 1, got {max_batches}")
    with swapper.consumeResults(prefetch=2 * max_batches,
                                inactivity_timeout=GATHER_SECONDS) as consumer:
        group: list[ConsumedResultBatch] = []
        for batch in consumer:
            if batch is not None:
                group.append(batch)
                if len(group) < max_batches:
                    continue   # more may be at hand
            if group:
                yield group
                group = []
            else:
                _wait_for_readable(swapper.bus, stop)
            if stop.isSet:
                return


def _wait_for_readable(bus: Bus, stop: StopFlag) -> None:
    """Idle: wait up to IDLE_WAIT_SECONDS for the broker's socket to turn readable (a
    result arriving); without a socket (an in-process bus) the consumer's own inactivity
    timeout is the wait."""
    fileno = bus.socket_fileno()
    if fileno is not None and not stop.isSet:
        select.select([fileno], [], [], IDLE_WAIT_SECONDS)
