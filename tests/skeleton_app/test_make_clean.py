"""``make clean`` after ``make run``: the skeleton application's services stop, and its
database, queues, results exchange, checkpoints and logs are gone — and nothing else is touched
(another database, a queue of another application on the same virtual host)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from skeleton_test_support import REPO_ROOT, SKELETON_DIR, free_port, port_open, wait_for

from nta_utils.config import Config

pytestmark = pytest.mark.integration

SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306/"


def rabbitmqctl(*args: str) -> list[str]:
    out = subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                         text=True, timeout=60).stdout.split("\n")
    return [line.strip() for line in out if line.strip() and line.strip() != "name"]


def databases() -> set[str]:
    engine = sa.create_engine(SERVER_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.exec_driver_sql("SHOW DATABASES")}
    finally:
        engine.dispose()


@pytest.fixture()
def app_env(tmp_path: Path) -> Iterator[dict]:
    """An application of its own (database, vhost, names, ports, checkpoints, run dir) on the
    skeleton configuration, with APPLICATION_CONFIG_PATH unset as after `make run`."""
    token = uuid.uuid4().hex[:8]
    vhost, db, prefix = f"clean_{token}", f"clean_{token}", f"clean_{token}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    env = {k: v for k, v in os.environ.items()
           if k != "APPLICATION_CONFIG_PATH" and not k.startswith("_NTA_UTILS_CONFIG__")}
    run_dir, checkpoints = tmp_path / "run", tmp_path / "checkpoints"
    env.update({
        Config.getEnvVarOverrideName("application.conf", "repository", "db"): db,
        Config.getEnvVarOverrideName("application.conf", "metric_streamer", "results_exchange_name"):
            f"{prefix}.model.results",
        Config.getEnvVarOverrideName("application.conf", "metric_listener", "queue_name"):
            f"{prefix}.metric.custom.data",
        Config.getEnvVarOverrideName("application.conf", "metric_listener", "plaintext_port"): str(free_port()),
        Config.getEnvVarOverrideName("model-swapper.conf", "interface_bus", "results_queue"):
            f"{prefix}.mswapper.results",
        Config.getEnvVarOverrideName("model-swapper.conf", "interface_bus", "model_input_queue_prefix"):
            f"{prefix}.mswapper.model.input.",
        Config.getEnvVarOverrideName("model-swapper.conf", "interface_bus", "scheduler_notification_queue"):
            f"{prefix}.mswapper.scheduler.notification",
        Config.getEnvVarOverrideName("model-checkpoint.conf", "storage", "root"): str(checkpoints),
        Config.getEnvVarOverrideName("rabbitmq.conf", "connection", "virtual_host"): vhost,
        "SKELETON_RUN_DIR": str(run_dir), "SKELETON_WEBAPP_PORT": str(free_port()),
        "SKELETON_SUPERVISOR_PORT": str(free_port()), "PYTHONUNBUFFERED": "1",
    })
    try:
        yield {"env": env, "vhost": vhost, "db": db, "prefix": prefix, "run_dir": run_dir,
               "checkpoints": checkpoints}
    finally:
        subprocess.run([str(SKELETON_DIR / "run.sh"), "stop"], env=env, capture_output=True,
                       timeout=300)
        rabbitmqctl("delete_vhost", vhost)
        engine = sa.create_engine(SERVER_URL, poolclass=sa.pool.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{db}`")
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{db}_other`")
        engine.dispose()


def test_make_clean_removes_the_application_and_nothing_else(app_env: dict) -> None:
    env, prefix = app_env["env"], app_env["prefix"]
    started = subprocess.run([str(SKELETON_DIR / "run.sh"), "start"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    htmengine = str(Path(sys.executable).parent / "htmengine")
    metric = "clean.me"
    csv = app_env["run_dir"] / "series.csv"
    csv.write_text("timestamp,value\n" + "".join(
        f"2024-01-01 00:{minute:02d}:00,{minute % 7}\n" for minute in range(30)))
    # the tutorial consumer, told to keep its queue, bound before the model exists so the
    # model's first result reaches it (started after, it would wait out its idle timeout)
    consumer = subprocess.Popen([sys.executable, str(SKELETON_DIR / "consume_realtime_results.py"),
                                 "--keep-queue", "--max-messages", "1", "--idle-timeout", "300"],
                                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: consumer.poll() is not None or "skeleton_results" in rabbitmqctl(
            "list_queues", "-p", app_env["vhost"], "name"), timeout=120,
            what="the consumer's queue")
        for command in (["monitor", metric, "--min", "0", "--max", "10"],
                        ["send", "--csv", str(csv), "--metric", metric]):
            result = subprocess.run([htmengine, *command], cwd=REPO_ROOT, env=env,
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
        out, err = consumer.communicate(timeout=400)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.communicate()
    assert consumer.returncode == 0, err
    assert "Handling" in out, out + err
    # things of others that must survive: a database and a queue on the same vhost
    engine = sa.create_engine(SERVER_URL, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{app_env['db']}_other`")
    engine.dispose()
    subprocess.run([sys.executable, "-c", "from nta_utils.message_bus import MessageBus\n"
                    "with MessageBus() as bus: bus.declare_queue('another.app.queue')"],
                   cwd=REPO_ROOT, env=env, check=True, timeout=60)
    wait_for(lambda: any(app_env["checkpoints"].glob("*")), timeout=300,
             what="a model checkpoint")
    queues = set(rabbitmqctl("list_queues", "-p", app_env["vhost"], "name"))
    assert {f"{prefix}.metric.custom.data", f"{prefix}.mswapper.results",
            f"{prefix}.mswapper.scheduler.notification", "skeleton_results"} <= queues
    assert any(q.startswith(f"{prefix}.mswapper.model.input.") for q in queues)
    assert f"{prefix}.model.results" in rabbitmqctl("list_exchanges", "-p", app_env["vhost"],
                                                    "name")
    assert app_env["db"] in databases()
    pid = int((app_env["run_dir"] / "supervisord.pid").read_text())

    cleaned = subprocess.run(["make", "-s", "clean"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert f"database: dropped {app_env['db']}" in cleaned.stdout

    assert not Path(f"/proc/{pid}").exists()
    assert not port_open(int(env["SKELETON_WEBAPP_PORT"]))
    assert app_env["db"] not in databases()
    assert f"{app_env['db']}_other" in databases()
    assert rabbitmqctl("list_queues", "-p", app_env["vhost"], "name") == ["another.app.queue"]
    assert not [e for e in rabbitmqctl("list_exchanges", "-p", app_env["vhost"], "name")
                if e.startswith(prefix)]
    assert not app_env["checkpoints"].exists()
    assert not app_env["run_dir"].exists() or not any(
        p.suffix == ".log" or p.name == "supervisord.pid" for p in app_env["run_dir"].iterdir())
