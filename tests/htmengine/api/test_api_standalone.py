"""``python -m htmengine.api`` alone (no other engine service) on the session's database and
vhost: `--help` only prints; health is 503 naming every silent service; per-metric gauges
can be switched off in ``[api] per_metric_gauges``."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import override
from process_support import REPO_ROOT, LoggedProcess, free_port, wait_for
from supervised_support import listenerUp

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def _api_alone(env: dict[str, str], tmp_path: Path, **overrides: str) -> Iterator[str]:
    """The API alone on a free port with application.conf [api]/[repository] `overrides`
    ({"section__option": value}); yields its base URL."""
    port = free_port()
    env = {**env, override("api", "port"): str(port),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
           **{override(*key.split("__")): value for key, value in overrides.items()}}
    process = LoggedProcess([sys.executable, "-m", "htmengine.api"], env,
                            tmp_path / "api.log")
    try:
        wait_for(lambda: listenerUp(port) or process.process.poll() is not None, 60)
        assert process.process.poll() is None, process.output()
        yield f"http://127.0.0.1:{port}"
    finally:
        # uvicorn shuts down cleanly, then re-raises SIGTERM so its exit status tells why
        assert process.stop() in (0, -15), process.output()
        assert "Application shutdown complete" in process.output()


@pytest.fixture()
def lone_api(engine_env, migrated_db, tmp_path: Path) -> Iterator[str]:
    """The API alone, per-metric gauges off."""
    with _api_alone(engine_env.subprocess_env(), tmp_path,
                    api__per_metric_gauges="false") as url:
        yield url


def test_help_only_prints(engine_env) -> None:
    result = subprocess.run([sys.executable, "-m", "htmengine.api", "--help"], cwd=REPO_ROOT,
                            env=engine_env.subprocess_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--port" in result.stdout and result.stderr == ""


def test_health_names_silent_services_and_gauges_switch_off(lone_api: str) -> None:
    with httpx.Client(base_url=lone_api, timeout=30) as client:
        assert client.post("/api/v1/metrics/api.lone/data",
                           json=[{"timestamp": 1430000000, "value": 5}]).status_code == 200
        health = client.get("/api/v1/health")
        assert health.status_code == 503
        body = health.json()
        assert body["mysql"] is True and body["rabbitmq"] is True
        for service in ("metric_listener", "metric_storer", "model_scheduler",
                        "anomaly_service", "alert_service"):
            assert f"service {service}: no heartbeat seen" in body["problems"]
            assert body["services"][service] == {"alive": False, "heartbeatAgeSeconds": None}
        scraped = client.get("/metrics").text
        assert "htmengine_metric_last_value" not in scraped
        assert "htmengine_metric_last_anomaly_likelihood" not in scraped
        assert 'htmengine_models{status="UNMONITORED"}' in scraped
        assert "htmengine_samples_received_total 1.0" in scraped


def test_unreachable_mysql_and_rabbitmq_are_json_503(engine_env, tmp_path: Path) -> None:
    env = {**engine_env.subprocess_env(),
           "_NTA_UTILS_CONFIG__RABBITMQ__CONNECTION__VIRTUAL_HOST": "no_such_vhost_api"}
    with _api_alone(env, tmp_path, repository__db="no_such_db_api") as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        listed = client.get("/api/v1/metrics")
        assert listed.status_code == 503
        assert listed.json()["error"].startswith("MySQL is unavailable: ")
        health = client.get("/api/v1/health")
        assert health.status_code == 503
        assert (health.json()["mysql"], health.json()["rabbitmq"]) == (False, False)
        assert any(p.startswith("RabbitMQ is unavailable") for p in health.json()["problems"])
        scraped = client.get("/metrics")
        assert scraped.status_code == 200
        assert 'htmengine_backend_up{backend="mysql"} 0.0' in scraped.text
        assert 'htmengine_backend_up{backend="rabbitmq"} 0.0' in scraped.text
        put = client.put("/api/v1/metrics/api.down/model", json={"min": 0, "max": 1})
        assert put.status_code == 503 and put.json()["status"] == 503
