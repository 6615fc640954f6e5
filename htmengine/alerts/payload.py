"""The JSON body of one alert."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood


def alert_payload(metric: dict[str, Any], result: dict[str, Any], threshold: float,
                  public_url: str) -> dict[str, Any]:
    """The alert for one scored row (`metric` and `result` as on the results exchange)."""
    likelihood = float(result["anomaly"])
    epoch = int(result["ts"])
    name = str(metric.get("name") or "")
    query = urlencode({"since": epoch, "until": epoch})
    return {
        "metric": name,
        "uid": metric["uid"],
        "rowid": int(result["rowid"]),
        "timestamp": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "epoch": epoch,
        "value": result["value"],
        "rawAnomalyScore": result.get("rawAnomaly"),
        "anomalyLikelihood": likelihood,
        "logLikelihood": AnomalyLikelihood.computeLogLikelihood(likelihood),
        "threshold": threshold,
        "link": f"{public_url}/api/v1/metrics/{quote(name, safe='')}/data?{query}",
    }


def idempotency_key(payload: dict[str, Any]) -> str:
    """A key naming the alerted row, sent as the ``Idempotency-Key`` header."""
    return f"{payload['uid']}-{payload['rowid']}"
