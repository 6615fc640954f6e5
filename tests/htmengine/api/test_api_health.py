"""``/api/v1/health`` over real HTTP against the engine under supervisord: 200 with every
service's heartbeat and the queue depths; 503 naming the service when one stops beating."""

from __future__ import annotations

import pytest
from api_support import ALL_PROGRAMS, LiveEngine
from process_support import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_health_is_200_with_every_service_alive(live: LiveEngine) -> None:
    def healthy() -> dict | None:
        response = live.get("/api/v1/health")
        return response.json() if response.status_code == 200 else None

    body = wait_for(healthy, 60, interval=0.5, what="a healthy engine")
    assert body["mysql"] is True and body["rabbitmq"] is True and body["problems"] == []
    expected = set(ALL_PROGRAMS) - {"api"}
    assert set(body["services"]) == expected
    for service in body["services"].values():
        assert service["alive"] is True and 0 <= service["heartbeatAgeSeconds"] < 15
    assert set(body["queues"]) == {"custom_metrics", "model_results",
                                   "scheduler_notifications", "alerts", "model_input"}
    assert all(isinstance(depth, int) for depth in body["queues"].values())


def test_health_is_503_naming_a_frozen_service(live: LiveEngine) -> None:
    with live.supervised.frozen("metric_storer"):
        def unhealthy() -> dict | None:
            response = live.get("/api/v1/health")
            return response.json() if response.status_code == 503 else None

        body = wait_for(unhealthy, 40, interval=0.5, what="health to report the frozen storer")
    assert body["healthy"] is False
    assert body["services"]["metric_storer"]["alive"] is False
    assert any("metric_storer" in problem and "heartbeat" in problem
               for problem in body["problems"]), body["problems"]
    wait_for(lambda: live.get("/api/v1/health").status_code == 200, 40, interval=0.5,
             what="health to recover after the storer resumes")
