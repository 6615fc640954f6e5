"""``python -m htmengine.api``: serve the engine's HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from htmengine import engine_metrics
from htmengine.api.app import create_app
from htmengine.api.settings import load_settings
from htmengine.runtime.service_support import configureServiceLogging

_log = logging.getLogger("htmengine.api")


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM on ``[api] host``/``port`` (or --host/--port)."""
    parser = argparse.ArgumentParser(
        prog="python -m htmengine.api",
        description="The engine's HTTP API (JSON under /api/v1, /metrics, /docs).")
    parser.add_argument("--host", default=None, help="address to bind (default [api] host)")
    parser.add_argument("--port", type=int, default=None, help="port (default [api] port)")
    args = parser.parse_args(argv)
    configureServiceLogging("htmengine.api")
    settings = load_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    engine_metrics.start_heartbeat("api")
    _log.info("Serving the htmengine API on http://%s:%d/ (docs at /docs)", host, port)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                access_log=False, timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
