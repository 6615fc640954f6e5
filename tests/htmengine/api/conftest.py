"""The engine under supervisord (scripts/run-engine.sh, as `make run-engine`) with its API and
alert service, on the session's database, vhost, queues and free ports, with the alert
service pointed at a local receiver; helpers for real HTTP requests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from alert_receiver import AlertReceiver  # noqa: E402
from supervised_support import SupervisedEngine, listenerUp, pidAlive  # noqa: E402

from process_support import wait_for  # noqa: E402

ALL_PROGRAMS = ("model_scheduler", "metric_listener", "metric_storer", "anomaly_service",
                "api", "alert_service")
ALERT_THRESHOLD = 0.6


def _override(section: str, option: str) -> str:
    return f"_NTA_UTILS_CONFIG__APPLICATION__{section.upper()}__{option.upper()}"


class LiveEngine:
    """The supervised engine plus an HTTP client on its API."""

    def __init__(self, supervised: SupervisedEngine, api_port: int, plaintext_port: int,
                 receiver: AlertReceiver) -> None:
        self.supervised = supervised
        self.api_port = api_port
        self.plaintext_port = plaintext_port
        self.receiver = receiver
        self.base_url = f"http://127.0.0.1:{api_port}"
        self.client = httpx.Client(base_url=self.base_url, timeout=60)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET on the API."""
        return self.client.get(path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any request on the API."""
        return self.client.request(method, path, **kwargs)

    def metric(self, name: str) -> dict[str, Any]:
        """GET /api/v1/metrics/{name} (must answer 200)."""
        response = self.get(f"/api/v1/metrics/{name}")
        assert response.status_code == 200, response.text
        return response.json()

    def log_tails(self, lines: int = 30) -> str:
        """Last lines of every program's log."""
        parts = [self.supervised.logTails(lines)]
        for program in ("api", "alert_service"):
            log = self.supervised.runDir / f"{program}.log"
            if log.exists():
                parts.append(f"--- {log}\n" + "".join(
                    log.read_text(errors="replace").splitlines(True)[-lines:]))
        return "\n".join(parts)


@pytest.fixture(scope="session")
def live(engine_env, migrated_db, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[LiveEngine]:
    """The whole engine (six programs) under supervisord for the API tests."""
    receiver = AlertReceiver(mode="ok")
    receiver_port = receiver.start()
    env = {**engine_env.subprocess_env(),
           _override("alerts", "urls"): f"http://127.0.0.1:{receiver_port}/hook",
           _override("alerts", "threshold"): str(ALERT_THRESHOLD),
           _override("alerts", "min_interval_seconds"): "0",
           _override("alerts", "timeout_seconds"): "1",
           _override("alerts", "retry_for_seconds"): "90",
           _override("api", "heartbeat_max_age"): "15",
           _override("api", "max_body_bytes"): "200000"}
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
        yield engine
    finally:
        engine.client.close()
        supervisord_pid = supervised.supervisordPid()
        stopped = supervised.runScript("stop")
        receiver.stop()
        assert stopped.returncode == 0, f"run-engine.sh stop:\n{stopped.stdout}{stopped.stderr}"
        if supervisord_pid is not None:
            assert not pidAlive(supervisord_pid), "supervisord still running after stop"


@pytest.fixture(scope="session")
def results_exchange() -> str:
    """The session's results exchange name."""
    return os.environ[_override("metric_streamer", "results_exchange_name")]
