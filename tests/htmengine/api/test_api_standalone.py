"""``python -m htmengine.api`` alone (no other engine service) on the session's database and
vhost: `--help` only prints; health is 503 naming every silent service; per-metric gauges
can be switched off in ``[api] per_metric_gauges``."""

from __future__ import annotations

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


@pytest.fixture()
def lone_api(engine_env, migrated_db, tmp_path: Path) -> Iterator[str]:
    """The API alone on a free port, per-metric gauges off; yields its base URL."""
    port = free_port()
    env = {**engine_env.subprocess_env(), override("api", "per_metric_gauges"): "false",
           override("api", "port"): str(port),
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
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
