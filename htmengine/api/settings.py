"""Settings of the HTTP API, from ``application.conf`` section ``[api]``."""

from __future__ import annotations

from dataclasses import dataclass

from htmengine.config import app_config

API_SECTION = "api"


@dataclass(frozen=True)
class ApiSettings:
    """Where the API listens and how it reports."""

    host: str = "127.0.0.1"
    port: int = 8081
    max_body_bytes: int = 1024 * 1024
    per_metric_gauges: bool = True
    heartbeat_max_age: float = 30.0
    services: tuple[str, ...] = ("metric_listener", "metric_storer", "model_scheduler",
                                 "anomaly_service", "alert_service")
    public_url: str = "http://127.0.0.1:8081"
    min_rows_for_model: int = 288


def load_settings() -> ApiSettings:
    """Settings from ``application.conf`` (``[api]`` and ``[metric_storer]``)."""
    config = app_config()
    return ApiSettings(
        host=config.get(API_SECTION, "host"),
        port=config.getint(API_SECTION, "port"),
        max_body_bytes=config.getint(API_SECTION, "max_body_bytes"),
        per_metric_gauges=config.getboolean(API_SECTION, "per_metric_gauges"),
        heartbeat_max_age=config.getfloat(API_SECTION, "heartbeat_max_age"),
        services=tuple(config.get(API_SECTION, "services").split()),
        public_url=config.get(API_SECTION, "public_url").rstrip("/"),
        min_rows_for_model=config.getint("metric_storer", "min_rows_for_model"),
    )
