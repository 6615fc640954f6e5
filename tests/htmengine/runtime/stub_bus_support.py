"""Running a service loop on the in-memory bus: the service's `run` on a thread until the test
is done, and a RabbitMQ address that refuses connections so that nothing reaches a broker.

Test modules import the `engine` fixture from here (`from stub_bus_support import engine`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
import sqlalchemy as sa
from process_support import free_port

from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.repository import engineFactory
from htmengine.runtime.service_support import StopFlag
from nta_utils.stub_bus import StubBroker, StubBus

RABBITMQ_PORT_OVERRIDE = "_NTA_UTILS_CONFIG__RABBITMQ__CONNECTION__PORT"


def refused_broker_port() -> str:
    """A local port nothing listens on (a MessageBus built by mistake fails fast)."""
    return str(free_port())


@pytest.fixture()
def engine(migrated_db: str, monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    """The session's database, with RabbitMQ's port pointed at one that refuses connections."""
    monkeypatch.setenv(RABBITMQ_PORT_OVERRIDE, refused_broker_port())
    return engineFactory()


def swapper_factory(broker: StubBroker
                    ) -> Callable[[], AbstractContextManager[ModelSwapperInterface]]:
    """A swapper factory for the custom adapter: each call, an interface on the stub broker."""
    @contextmanager
    def factory() -> Iterator[ModelSwapperInterface]:
        with ModelSwapperInterface(StubBus(broker)) as swapper:
            yield swapper
    return factory


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
