"""Fixtures of the skeleton app tests: the session's bus and custom-metrics queue, the web app
as a real subprocess on the session's database and virtual host."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from skeleton_test_support import (
    REPO_ROOT,
    SKELETON_DIR,
    WebAppProcess,
    free_port,
    port_open,
    wait_for,
)

ENGINE_PROGRAMS = ("model_scheduler", "metric_listener", "metric_storer", "anomaly_service")


@pytest.fixture()
def skeleton_bus(engine_env) -> Iterator[object]:
    """A MessageBus on this session's virtual host."""
    from nta_utils.message_bus import MessageBus

    with MessageBus() as message_bus:
        yield message_bus


@pytest.fixture()
def custom_metrics_queue(engine_env, skeleton_bus) -> str:
    """The session's custom-metrics queue, declared and emptied."""
    name = os.environ["_NTA_UTILS_CONFIG__APPLICATION__METRIC_LISTENER__QUEUE_NAME"]
    skeleton_bus.declare_queue(name, durable=True)
    skeleton_bus.purge_queue(name)
    return name


@pytest.fixture(scope="module")
def webapp(engine_env, migrated_db, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[WebAppProcess]:
    """The skeleton web app on a free port, using the session's database and vhost."""
    log_path: Path = tmp_path_factory.mktemp("webapp") / "webapp.log"
    app = WebAppProcess(engine_env.subprocess_env(), log_path)
    yield app
    code = app.stop()
    assert code == 0, f"web app exited with {code}:\n{app.output()}"


@dataclass
class SkeletonRun:
    """The skeleton app started by ``skeleton_app/run.sh start`` for this session."""

    env: dict[str, str]  # environment of the tutorial's scripts (APPLICATION_CONFIG_PATH unset)
    webapp_port: int
    run_dir: Path
    supervisor_port: int

    def script(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``python skeleton_app/<name> args`` as the README does; output captured."""
        return subprocess.run(self.argv(name, *args), cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def argv(self, name: str, *args: str) -> list[str]:
        """The command line of ``python skeleton_app/<name> args``."""
        return [sys.executable, str(SKELETON_DIR / name), *args]


def _run_sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(SKELETON_DIR / "run.sh"), command], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _engine_log_tails(run_dir: Path) -> str:
    parts = []
    for log in [*(run_dir / f"{p}.log" for p in ENGINE_PROGRAMS),
                run_dir / "webapp.log"]:
        if log.exists():
            parts.append(f"--- {log}\n" + "".join(log.read_text().splitlines(True)[-15:]))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def skeleton_running(engine_env, migrated_db, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[SkeletonRun]:
    """The engine's services and the web app under supervisord, started with
    ``skeleton_app/run.sh start`` (what ``make run`` does) on the session's database, vhost,
    queue names, checkpoint root and ports; stopped with ``run.sh stop`` at the end."""
    run_dir = tmp_path_factory.mktemp("skeleton_run")
    port, supervisor_port = free_port(), free_port()
    # As a newcomer after `make run`: APPLICATION_CONFIG_PATH unset (the scripts default to
    # skeleton_app/conf); the session's overrides redirect database, vhost, names and ports.
    env = {**engine_env.subprocess_env(), "SKELETON_RUN_DIR": str(run_dir),
           "SKELETON_WEBAPP_PORT": str(port), "SKELETON_SUPERVISOR_PORT": str(supervisor_port),
           "PYTHONUNBUFFERED": "1"}
    env.pop("APPLICATION_CONFIG_PATH")
    started = _run_sh("start", env)
    try:
        assert started.returncode == 0, (
            f"run.sh start failed:\n{started.stdout}\n{started.stderr}\n"
            f"{_engine_log_tails(run_dir)}")
        wait_for(lambda: port_open(port), timeout=30, what="the web app port")
        yield SkeletonRun(env, port, run_dir, supervisor_port)
    finally:
        pid_file = run_dir / "supervisord.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        stopped = _run_sh("stop", env)
        assert stopped.returncode == 0, f"run.sh stop failed:\n{stopped.stdout}\n{stopped.stderr}"
        if pid is not None:
            assert not _alive(pid), f"supervisord {pid} still running after run.sh stop"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
