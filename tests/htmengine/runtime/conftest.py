"""Fixtures of the runtime tests: a MessageBus on the session's vhost, queue names, helpers to
run a service as a real subprocess and to wait for conditions."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_test_support import ServiceProcess


@pytest.fixture()
def start_service(engine_env, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start services as subprocesses; all are stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def start(module: str, *args: str, extraEnv: dict[str, str] | None = None) -> ServiceProcess:
        env = {**engine_env.subprocess_env(), **(extraEnv or {})}
        logPath = tmp_path / f"{module.rsplit('.', 1)[-1]}-{len(started)}.log"
        service = ServiceProcess(module, env, logPath, list(args))
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture()
def bus(engine_env) -> Iterator[object]:
    """A MessageBus on this session's virtual host."""
    from nta_utils.message_bus import MessageBus

    with MessageBus() as message_bus:
        yield message_bus


@pytest.fixture()
def custom_queue(engine_env, bus) -> str:
    """The custom-metrics queue of this session, declared and emptied."""
    name = os.environ[
        "_NTA_UTILS_CONFIG__APPLICATION__METRIC_LISTENER__QUEUE_NAME"]
    bus.declare_queue(name, durable=True)
    bus.purge_queue(name)
    return name
