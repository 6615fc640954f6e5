"""Helpers of the API tests: sample bodies and waiting for engine states over HTTP."""

from __future__ import annotations

from typing import Any

from conftest import LiveEngine
from supervised_support import T0, sampleValue

from process_support import wait_for


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
