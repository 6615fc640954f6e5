"""Send this machine's CPU percent to htmengine every 5 seconds, as the custom metric
``cpu_percent``, through the custom-metrics queue (the original's message_bus_connector API)."""

from __future__ import annotations

import argparse
import json
import sys
import time

try:
    import psutil

    from htmengine.config import app_config
    from nta_utils.message_bus_connector import MessageBusConnector
except ModuleNotFoundError as missing:  # run with a python that lacks the project's packages
    sys.exit(f"send_cpu.py: {missing}; run it with the project's environment: "
             ".venv/bin/python skeleton_app/send_cpu.py (or `source .venv/bin/activate` first; "
             "`make venv` creates it)")

METRIC_NAME = "cpu_percent"


def send_sample(bus: MessageBusConnector, queue: str, metric: str, value: float,
                epoch_seconds: int) -> None:
    """Publish one ``name value timestamp`` sample as a persistent plain-protocol message."""
    line = "%s %r %d" % (metric, float(value), epoch_seconds)
    bus.publish(mqName=queue, body=json.dumps({"protocol": "plain", "data": [line]}),
                persistent=True)


def main(argv: list[str] | None = None) -> None:
    """Sample CPU percent every 5 seconds, forever (or --count times)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=5.0,
                        help="seconds per sample (default %(default)s)")
    parser.add_argument("--count", type=int, default=0,
                        help="stop after this many samples (default 0: run forever)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error(f"--interval must be positive, got {args.interval}")
    queue = app_config().get("metric_listener", "queue_name")
    print(f"Sending CPU percent samples to `{METRIC_NAME}`...")
    sys.stdout.flush()
    sent = 0
    with MessageBusConnector() as bus:
        # Durable, as the metric listener declares it: samples wait there if the engine is down.
        bus.createMessageQueue(queue, durable=True)
        while not args.count or sent < args.count:
            sample = psutil.cpu_percent(interval=args.interval)
            ts = int(time.time())
            send_sample(bus, queue, METRIC_NAME, sample, ts)
            print("Sent %f @ %d" % (sample, ts))
            sys.stdout.flush()
            sent += 1


if __name__ == "__main__":
    main()
