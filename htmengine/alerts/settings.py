"""Settings of the alert service, from ``application.conf`` section ``[alerts]``."""

from __future__ import annotations

from dataclasses import dataclass

from htmengine.config import app_config
from htmengine.exceptions import InvalidInputError


@dataclass(frozen=True)
class AlertSettings:
    """Receivers, threshold, rate limit and delivery limits."""

    urls: tuple[str, ...]
    threshold: float
    min_interval_seconds: float
    timeout_seconds: float
    retry_for_seconds: float
    queue_name: str
    results_exchange: str
    public_url: str


def load_settings() -> AlertSettings:
    """Settings from ``application.conf``; InvalidInputError naming a bad option."""
    config = app_config()
    urls = tuple(config.get("alerts", "urls").split())
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"application.conf [alerts] urls: {url!r} is not an "
                                    f"http(s) URL")
    threshold = config.getfloat("alerts", "threshold")
    if not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"application.conf [alerts] threshold must be in [0, 1], "
                                f"got {threshold}")
    return AlertSettings(
        urls=urls, threshold=threshold,
        min_interval_seconds=config.getfloat("alerts", "min_interval_seconds"),
        timeout_seconds=config.getfloat("alerts", "timeout_seconds"),
        retry_for_seconds=config.getfloat("alerts", "retry_for_seconds"),
        queue_name=config.get("alerts", "queue_name"),
        results_exchange=config.get("metric_streamer", "results_exchange_name"),
        public_url=config.get("api", "public_url").rstrip("/"))
