"""Shared fixtures: each test session gets its own configuration directory, MariaDB database,
RabbitMQ virtual host, queue-name prefix and checkpoint root, all cleaned up at the end.

Everything is redirected with `_NTA_UTILS_CONFIG__...` environment overrides set in os.environ,
so services started as subprocesses by a test inherit the same redirection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from process_support import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"


def override_name(config_file: str, section: str, option: str) -> str:
    """Environment variable that overrides one option of one config file."""
    root = Path(config_file).stem.upper().replace("-", "_")
    return f"_NTA_UTILS_CONFIG__{root}__{section.upper()}__{option.upper()}"


@dataclass
class EngineTestEnv:
    """Where this test session's engine lives: config, database, vhost, names, checkpoints."""

    config_dir: Path
    db_name: str
    vhost: str
    prefix: str
    checkpoint_root: Path
    plaintext_port: int
    api_port: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def subprocess_env(self) -> dict[str, str]:
        """Environment for a service subprocess: os.environ plus this session's overrides."""
        return {**os.environ, **self.env}


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def engine_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineTestEnv]:
    """Session-wide redirected configuration; applies its overrides to os.environ."""
    token = uuid.uuid4().hex[:8]
    prefix = f"test_{token}"
    base = tmp_path_factory.mktemp("engine")
    config_dir = base / "conf"
    shutil.copytree(CONF_DIR, config_dir, ignore=shutil.ignore_patterns("overrides"))
    checkpoint_root = base / "checkpoints"
    checkpoint_root.mkdir()
    env_obj = EngineTestEnv(
        config_dir=config_dir,
        db_name=f"htmengine_test_{token}",
        vhost=f"htmengine_test_{token}",
        prefix=prefix,
        checkpoint_root=checkpoint_root,
        plaintext_port=free_port(),
        api_port=free_port(),
    )
    env_obj.env = {
        "APPLICATION_CONFIG_PATH": str(config_dir),
        override_name("application.conf", "repository", "db"): env_obj.db_name,
        override_name("application.conf", "metric_streamer", "results_exchange_name"):
            f"{prefix}.model.results",
        override_name("application.conf", "metric_listener", "queue_name"):
            f"{prefix}.metric.custom.data",
        override_name("application.conf", "metric_listener", "plaintext_port"):
            str(env_obj.plaintext_port),
        override_name("model-swapper.conf", "interface_bus", "results_queue"):
            f"{prefix}.mswapper.results",
        override_name("model-swapper.conf", "interface_bus", "model_input_queue_prefix"):
            f"{prefix}.mswapper.model.input.",
        override_name("model-swapper.conf", "interface_bus", "scheduler_notification_queue"):
            f"{prefix}.mswapper.scheduler.notification",
        override_name("model-checkpoint.conf", "storage", "root"): str(checkpoint_root),
        override_name("application.conf", "api", "port"): str(env_obj.api_port),
        override_name("application.conf", "api", "public_url"):
            f"http://127.0.0.1:{env_obj.api_port}",
        override_name("application.conf", "alerts", "queue_name"): f"{prefix}.alerts.results",
        override_name("rabbitmq.conf", "connection", "virtual_host"): env_obj.vhost,
    }
    _rabbitmqctl("add_vhost", env_obj.vhost)
    _rabbitmqctl("set_permissions", "-p", env_obj.vhost, "guest", ".*", ".*", ".*")
    saved = {name: os.environ.get(name) for name in env_obj.env}
    os.environ.update(env_obj.env)
    try:
        yield env_obj
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _rabbitmqctl("delete_vhost", env_obj.vhost)
        server = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/")
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{env_obj.db_name}`")
        server.dispose()


@pytest.fixture(scope="session")
def migrated_db(engine_env: EngineTestEnv) -> str:
    """This session's database, created and migrated by `repository/migrate.py` (the real
    command); returns the database name."""
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "repository" / "migrate.py")],
        check=True, env=engine_env.subprocess_env(), cwd=REPO_ROOT, timeout=300,
    )
    return engine_env.db_name


@pytest.fixture(scope="session")
def sql_engine(migrated_db: str) -> Iterator[sa.Engine]:
    """A plain SQLAlchemy engine on this session's migrated database."""
    engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:3306/{migrated_db}")
    yield engine
    engine.dispose()
