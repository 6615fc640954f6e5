"""The engine under supervisord (scripts/run-engine.sh, as `make run-engine`) with its API and
alert service, on the session's database, vhost, queues and free ports, with the alert
service pointed at a local receiver; helpers for real HTTP requests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from alert_receiver import AlertReceiver  # noqa: E402
from api_support import ALERT_THRESHOLD, ALL_PROGRAMS, LiveEngine, override  # noqa: E402
from process_support import wait_for  # noqa: E402
from supervised_support import SupervisedEngine, listenerUp, pidAlive  # noqa: E402


class _EngineHolder:
    """Starts the engine for the first test of this folder that needs it and stops it as soon
    as the run leaves the folder (so no other folder's engine shares its queues)."""

    def __init__(self) -> None:
        self.engine: LiveEngine | None = None

    def get(self, engine_env, tmp_path_factory: pytest.TempPathFactory) -> LiveEngine:
        """The running engine, started if needed."""
        if self.engine is None:
            self.engine = _start(engine_env, tmp_path_factory)
        return self.engine

    def stop(self) -> None:
        """Stop the engine if it runs."""
        engine, self.engine = self.engine, None
        if engine is not None:
            _stop(engine)


_HOLDER = _EngineHolder()
_HERE = Path(__file__).resolve().parent


def _start(engine_env, tmp_path_factory: pytest.TempPathFactory) -> LiveEngine:
    receiver = AlertReceiver(mode="ok")
    receiver_port = receiver.start()
    env = {**engine_env.subprocess_env(),
           override("alerts", "urls"): f"http://127.0.0.1:{receiver_port}/hook",
           override("alerts", "threshold"): str(ALERT_THRESHOLD),
           override("alerts", "min_interval_seconds"): "0",
           override("alerts", "timeout_seconds"): "1",
           override("alerts", "retry_for_seconds"): "90",
           override("api", "heartbeat_max_age"): "15",
           override("api", "max_body_bytes"): "200000"}
    supervised = SupervisedEngine(env, tmp_path_factory.mktemp("api_engine_run"))
    engine = LiveEngine(supervised, engine_env.api_port, engine_env.plaintext_port, receiver)
    started = supervised.runScript("start")
    try:
        assert started.returncode == 0, (
            f"run-engine.sh start failed:\n{started.stdout}\n{started.stderr}\n"
            f"{engine.log_tails()}")
        for program in ALL_PROGRAMS:
            assert supervised.pid(program), supervised.ctl("status")
        wait_for(lambda: listenerUp(engine_env.plaintext_port), 60, what="the listener")
        wait_for(lambda: listenerUp(engine_env.api_port), 60, what="the API")
    except BaseException:
        _stop(engine)
        raise
    return engine


def _stop(engine: LiveEngine) -> None:
    engine.client.close()
    supervised = engine.supervised
    supervisord_pid = supervised.supervisordPid()
    stopped = supervised.runScript("stop")
    engine.receiver.stop()
    assert stopped.returncode == 0, f"run-engine.sh stop:\n{stopped.stdout}{stopped.stderr}"
    if supervisord_pid is not None:
        assert not pidAlive(supervisord_pid), "supervisord still running after stop"


@pytest.fixture()
def live(engine_env, migrated_db, tmp_path_factory: pytest.TempPathFactory) -> LiveEngine:
    """The whole engine (six programs) under supervisord for the API tests, shared by the
    folder's tests."""
    return _HOLDER.get(engine_env, tmp_path_factory)


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the engine when the next test is not in this folder."""
    if nextitem is None or Path(nextitem.path).resolve().parent != _HERE:
        _HOLDER.stop()


@pytest.fixture(scope="session")
def results_exchange() -> str:
    """The session's results exchange name."""
    return os.environ[override("metric_streamer", "results_exchange_name")]
