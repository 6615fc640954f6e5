"""Helpers of the API tests: the live engine's HTTP client, sample bodies, waiting for engine
states over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
from alert_receiver import AlertReceiver
from process_support import wait_for
from supervised_support import PROGRAMS, T0, SupervisedEngine, sampleValue

ALL_PROGRAMS = PROGRAMS
ALERT_THRESHOLD = 0.6


def override(section: str, option: str) -> str:
    """Environment variable overriding application.conf [section] option."""
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
        return self.supervised.logTails(lines)


def samples(metric_index: int, rows: range) -> list[dict[str, Any]]:
    """JSON samples of rows `rows` (0-based), 5 minutes apart from T0, epoch timestamps."""
    return [{"timestamp": T0 + 300 * row, "value": sampleValue(metric_index, row)}
            for row in rows]


def post_samples(live: LiveEngine, name: str, body: list[dict[str, Any]]) -> dict[str, Any]:
    """POST samples; the answer (must be 200)."""
    response = live.request("POST", f"/api/v1/metrics/{name}/data", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def wait_status(live: LiveEngine, name: str, status: str, timeout: float = 240
                ) -> dict[str, Any]:
    """Wait until the metric has `status`; its detail."""
    def reached() -> dict[str, Any] | None:
        detail = live.metric(name)
        return detail if detail["status"] == status else None

    try:
        return wait_for(reached, timeout, interval=0.5, what=f"{name} to become {status}")
    except AssertionError as error:
        raise AssertionError(f"{error}: {live.metric(name)}\n{live.log_tails()}") from None


def wait_scored(live: LiveEngine, name: str, rows: int, timeout: float = 300
                ) -> dict[str, Any]:
    """Wait until `rows` rows of the metric are scored; its detail."""
    def reached() -> dict[str, Any] | None:
        detail = live.metric(name)
        assert detail["status"] != "ERROR", detail
        return detail if detail["rowsScored"] >= rows else None

    try:
        return wait_for(reached, timeout, interval=0.5, what=f"{rows} scored rows of {name}")
    except AssertionError as error:
        raise AssertionError(f"{error}: {live.metric(name)}\n{live.log_tails()}") from None
