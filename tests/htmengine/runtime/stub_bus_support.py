"""Running a service loop on the in-memory bus: the service's `run` on a thread until the test
is done, and a RabbitMQ address that refuses connections so that nothing reaches a broker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from process_support import free_port

from htmengine.runtime.service_support import StopFlag

RABBITMQ_PORT_OVERRIDE = "_NTA_UTILS_CONFIG__RABBITMQ__CONNECTION__PORT"


def refused_broker_port() -> str:
    """A local port nothing listens on (a MessageBus built by mistake fails fast)."""
    return str(free_port())


@contextmanager
def service_thread(run: Callable[[StopFlag], None]) -> Iterator[StopFlag]:
    """Run `run(stop)` on a thread; on exit set the flag, join the thread (10 s at most) and
    re-raise what the loop raised."""
    stop = StopFlag()
    raised: list[BaseException] = []

    def body() -> None:
        try:
            run(stop)
        except BaseException as error:  # noqa: BLE001 - handed to the test below
            raised.append(error)

    thread = threading.Thread(target=body, name="service-under-test", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10.0)
    assert not thread.is_alive(), "the service loop did not stop within 10 s of its stop flag"
    if raised:
        raise raised[0]
