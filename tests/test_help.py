"""``--help`` on every script, service module, shell script and ``htmengine`` command prints
usage and exits 0 without touching a database, queue or file, with and without
APPLICATION_CONFIG_PATH.

Each command runs with the database, virtual host and checkpoint root redirected (through
``_NTA_UTILS_CONFIG__`` overrides) to names that exist nowhere; afterwards the database must
still not exist, the virtual host must hold no queue and no exchange of its own, and no file may
have appeared in the repository, the working directory or HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from nta_utils.config import Config

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HTMENGINE = str(Path(sys.executable).parent / "htmengine")

SCRIPTS = [
    *[[PY, f"skeleton_app/{name}.py"] for name in (
        "send_cpu", "create_cpu_percent_model", "consume_realtime_results", "demo", "webapp")],
    [PY, "repository/migrate.py"],
    *[[PY, "-m", module] for module in (
        "htmengine.runtime.metric_listener", "htmengine.runtime.metric_storer",
        "htmengine.runtime.anomaly_service", "htmengine.model_swapper.model_scheduler_service",
        "htmengine.runtime.metric_garbage_collector",
        "htmengine.monitors.rmq_metric_collector_agent", "htmengine.api", "htmengine.alerts",
        "htmengine.algorithms.precompile", "influxhtm.bridge")],
    *[[PY, str(path.relative_to(REPO_ROOT))] for path in sorted((REPO_ROOT / "bench").glob("*.py"))
      if "__main__" in path.read_text()],
    ["scripts/ensure-services.sh"], ["scripts/stop-services.sh"], ["scripts/run-engine.sh"],
    ["skeleton_app/run.sh"],
]
# The console command and each subcommand.
CLI = [[HTMENGINE]] + [[HTMENGINE, sub] for sub in (
    "status", "metrics", "monitor", "unmonitor", "delete", "send", "tail", "plot", "clean",
    "dlq")] + [[HTMENGINE, "dlq", sub] for sub in ("list", "show", "requeue")]
COMMANDS = SCRIPTS + CLI


def _files(root: Path, skip: set[str]) -> set[Path]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        found.update(Path(dirpath, f) for f in filenames)
    return found


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A throw-away virtual host, a database name that does not exist, an empty HOME and
    working directory; checks at the end that the vhost has no queue or exchange."""
    token = uuid.uuid4().hex[:8]
    vhost, db = f"help_test_{token}", f"help_test_{token}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*",
                    ".*"], check=True, capture_output=True)
    base = tmp_path_factory.mktemp("help")
    home, cwd = base / "home", base / "cwd"
    home.mkdir()
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k != "APPLICATION_CONFIG_PATH" and not k.startswith("_NTA_UTILS_CONFIG__")}
    env.update({
        "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1",
        Config.getEnvVarOverrideName("application.conf", "repository", "db"): db,
        Config.getEnvVarOverrideName("rabbitmq.conf", "connection", "virtual_host"): vhost,
        Config.getEnvVarOverrideName("model-checkpoint.conf", "storage", "root"): str(base / "checkpoints"),
    })
    try:
        yield {"env": env, "db": db, "vhost": vhost, "home": home, "cwd": cwd, "base": base}
        queues = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name"],
                                check=True, capture_output=True, text=True).stdout.split()
        exchanges = subprocess.run(
            ["rabbitmqctl", "-q", "list_exchanges", "-p", vhost, "name"], check=True,
            capture_output=True, text=True).stdout.split()
        assert [q for q in queues if q != "name"] == []
        assert [e for e in exchanges if e not in ("name", "") and not e.startswith("amq.")] == []
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


def _database_exists(name: str) -> bool:
    server = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/", poolclass=sa.pool.NullPool)
    try:
        with server.connect() as conn:
            return conn.exec_driver_sql("SHOW DATABASES LIKE %s", (name,)).first() is not None
    finally:
        server.dispose()


@pytest.mark.parametrize("with_config", [False, True], ids=["unset", "set"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(Path(c[-1]).parts[-2:]))
def test_help_prints_usage_and_touches_nothing(command: list[str], with_config: bool,
                                               sandbox: dict) -> None:
    env = dict(sandbox["env"])
    if with_config:
        env["APPLICATION_CONFIG_PATH"] = str(REPO_ROOT / "skeleton_app" / "conf")
    skip = {".git", ".venv", "logs", ".pytest_cache", ".ruff_cache"}
    before = _files(REPO_ROOT, skip) | _files(sandbox["base"], set())
    argv = [str(REPO_ROOT / part) if part.endswith((".py", ".sh")) else part for part in command]
    result = subprocess.run([*argv, "--help"], cwd=sandbox["cwd"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage" in result.stdout.lower(), result.stdout
    assert result.stderr.strip() == "", result.stderr
    after = _files(REPO_ROOT, skip) | _files(sandbox["base"], set())
    assert sorted(map(str, after - before)) == []
    assert not _database_exists(sandbox["db"])
