"""htmengine: services that detect anomalies in streams of scalar metrics with HTM models.

``htmengine.APP_CONFIG`` is the application's `application.conf` (from
$APPLICATION_CONFIG_PATH), as in the original engine; it is loaded on first use (so importing
htmengine needs no configuration) and again when $APPLICATION_CONFIG_PATH changes.
"""

from __future__ import annotations

import os
from typing import Any

from htmengine.config import app_config
from nta_utils.config import APPLICATION_CONFIG_PATH_ENV, Config

_appConfig: tuple[str | None, Config] | None = None


def __getattr__(name: str) -> Any:
    """Module attribute ``APP_CONFIG`` (loaded lazily; ApplicationNotConfiguredError if
    $APPLICATION_CONFIG_PATH is unset)."""
    global _appConfig
    if name == "APP_CONFIG":
        path = os.environ.get(APPLICATION_CONFIG_PATH_ENV)
        if _appConfig is None or _appConfig[0] != path:
            _appConfig = (path, app_config())
        return _appConfig[1]
    raise AttributeError(f"module 'htmengine' has no attribute {name!r}")
