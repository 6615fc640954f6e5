"""``python -m htmengine.alerts``: the alert webhook service."""

from __future__ import annotations

import argparse

from htmengine import engine_metrics
from htmengine.alerts.delivery import AlertSender
from htmengine.alerts.service import AlertService
from htmengine.alerts.settings import load_settings
from htmengine.repository import engineFactory
from htmengine.runtime.service_support import StopFlag, configureServiceLogging
from nta_utils.message_bus import MessageBus


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; deliveries under way are finished before exiting."""
    argparse.ArgumentParser(
        prog="python -m htmengine.alerts",
        description="Alert webhooks: POST rows whose anomaly likelihood reaches "
                    "[alerts] threshold to the [alerts] urls (application.conf).",
    ).parse_args(argv)
    log = configureServiceLogging("htmengine.alerts")
    settings = load_settings()
    stop = StopFlag().install()
    engine_metrics.start_heartbeat("alert_service")
    sender = AlertSender(settings.urls, settings.timeout_seconds, settings.retry_for_seconds)
    try:
        with MessageBus() as bus:
            AlertService(settings, engineFactory(), sender).run(bus, stop)
    finally:
        sender.close(wait=True)
    log.info("Alert service stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
