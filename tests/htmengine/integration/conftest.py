"""Fixtures of the original engine's integration tests (ported from numenta-apps): they run
against the real engine under supervisord (``scripts/run-engine.sh start``) on this test
session's database, virtual host, queue names, checkpoint root and graphite port.

The original modules read ``Config("application.conf", os.environ.get(
"APPLICATION_CONFIG_PATH"))`` at import time, before any fixture runs; so, if it is unset,
APPLICATION_CONFIG_PATH points at the repository's conf/ while the modules are collected. The
session's redirections are environment overrides (tests/conftest.py), which `Config.get` applies
when a value is read, so those objects read the session's settings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT / "tests" / "htmengine" / "runtime"))

from supervised_support import SupervisedEngine, listenerUp, waitFor  # noqa: E402

os.environ.setdefault("APPLICATION_CONFIG_PATH", str(REPO_ROOT / "conf"))


@pytest.fixture(scope="module", autouse=True)
def running_engine(engine_env, migrated_db, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[SupervisedEngine]:
    """The engine's four services under supervisord for each test module of this folder;
    stopped after the module (later tests of the session use the same queues)."""
    engine = SupervisedEngine(engine_env.subprocess_env(), tmp_path_factory.mktemp("engine_run"))
    started = engine.runScript("start")
    try:
        assert started.returncode == 0, (
            f"run-engine.sh start failed:\n{started.stdout}\n{started.stderr}\n"
            f"{engine.logTails()}")
        waitFor(lambda: listenerUp(engine_env.plaintext_port), 60, what="the metric listener")
        yield engine
    finally:
        stopped = engine.runScript("stop")
        assert stopped.returncode == 0, f"run-engine.sh stop:\n{stopped.stdout}{stopped.stderr}"
