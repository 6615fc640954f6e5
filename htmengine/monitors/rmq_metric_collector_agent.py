"""RabbitMQ queue-depth agent: samples the number of ready messages in the engine's queues and
sends them as graphite plaintext metrics to an htmengine metric listener, so the engine can
watch its own queues with its own models.

Metrics (PREFIX is --metric-prefix):
  PREFIX-allq-ready.avg        ready messages in all queues of the broker (management API only)
  PREFIX-q-QUEUE-ready.avg     ready messages in QUEUE (by default the custom-metrics queue,
                               the model swapper's results queue and its scheduler
                               notification queue)

Depths come from the RabbitMQ management API (averaged over the last --average-seconds by the
broker) or, when the API is unreachable, from AMQP passive declares (the depth at sampling
time). A sample is taken at start and then every --interval seconds, until stopped.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from htmengine.config import app_config, swapper_config
from htmengine.runtime.service_support import StopFlag, configureServiceLogging
from nta_utils.errors import BusError, QueueNotFoundError
from nta_utils.message_bus import AmqpConnectionParams, MessageBus
from nta_utils.rabbitmq_management import (
    ManagementApiUnavailable,
    RabbitmqManagementClient,
    managementPort,
)

g_log = logging.getLogger("htmengine.monitors.rmq_metric_collector_agent")

# Sampling period and averaging period of the original agent.
AGG_PERIOD_SEC = 300
Q_AVG_READY_METRIC_FORMAT = "%(metricPrefix)s-q-%(queueName)s-ready.avg"
ALLQ_AVG_READY_METRIC_FORMAT = "%(metricPrefix)s-allq-ready.avg"
DEFAULT_METRIC_PREFIX = "rmq"


@dataclass
class AgentOptions:
    """What to sample and where to send it."""

    rmqHost: str
    rmqPort: int
    rmqUser: str
    rmqPassword: str
    vhost: str
    queues: list[str]
    metricDestHost: str | None   # None: dry run
    metricDestPort: int | None
    metricPrefix: str
    interval: float
    averageSeconds: int
    source: str                  # auto, management or amqp
    once: bool


def _hostPort(parser: argparse.ArgumentParser, option: str, value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"{option} must be host:port, got {value!r}")
    return host, int(port)


def defaultQueues() -> list[str]:
    """The engine's queues: custom-metrics input, swapper results, scheduler notification."""
    swapper = swapper_config()
    return [app_config().get("metric_listener", "queue_name"),
            swapper.get("interface_bus", "results_queue"),
            swapper.get("interface_bus", "scheduler_notification_queue")]


def parseArgs(argv: Sequence[str] | None) -> AgentOptions:
    """Options from the command line, with defaults from the application's configuration."""
    parser = argparse.ArgumentParser(
        prog="python -m htmengine.monitors.rmq_metric_collector_agent",
        description=__doc__.split("\n\n")[0],
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rmq-addr", default=None,
                        help="host:port of the RabbitMQ management API (default: rabbitmq.conf "
                             "host and the management port)")
    parser.add_argument("--rmq-user", default=None, help="RabbitMQ user (default: rabbitmq.conf)")
    parser.add_argument("--rmq-pass", default=None,
                        help="RabbitMQ password (default: rabbitmq.conf)")
    parser.add_argument("--rmq-queues", default=None,
                        help="comma-separated queue names of rabbitmq.conf's virtual host, "
                             "optionally vhost-qualified as in the original (%%2f/name) "
                             "(default: the engine's custom-metrics queue, the model swapper's "
                             "results queue and its scheduler notification queue)")
    parser.add_argument("--metric-addr", default=None,
                        help="host:port of the destination metric listener (default: "
                             "127.0.0.1 and application.conf [metric_listener] plaintext_port)")
    parser.add_argument("--metric-prefix", default=DEFAULT_METRIC_PREFIX,
                        help="prefix of the metric names (default %(default)s)")
    parser.add_argument("--dryRun", "--dryrun", action="store_true", dest="dryRun",
                        help="print the samples instead of sending them")
    parser.add_argument("--interval", type=float, default=AGG_PERIOD_SEC,
                        help="seconds between samples (default %(default)s)")
    parser.add_argument("--average-seconds", type=int, default=None,
                        help="management API: average the depths over this many seconds "
                             "(default: --interval; 0: depth at sampling time)")
    parser.add_argument("--source", choices=("auto", "management", "amqp"), default="auto",
                        help="where depths come from: the management API, AMQP passive "
                             "declares, or auto (the API, else declares; default)")
    parser.add_argument("--once", action="store_true", help="take one sample and exit")
    args = parser.parse_args(argv)
    # The configuration is read only now, so that --help touches nothing.
    bus = AmqpConnectionParams.from_config()
    rmqAddr = args.rmq_addr or f"{bus.host}:{managementPort()}"
    rmqHost, rmqPort = _hostPort(parser, "--rmq-addr", rmqAddr)
    rmqUser = bus.user if args.rmq_user is None else args.rmq_user
    rmqPass = bus.password if args.rmq_pass is None else args.rmq_pass
    rmqQueues = args.rmq_queues or ",".join(defaultQueues())
    if args.dryRun and args.metric_addr:
        parser.error("--dryRun is mutually exclusive with --metric-addr")
    destHost: str | None = None
    destPort: int | None = None
    if not args.dryRun:
        if args.metric_addr:
            destHost, destPort = _hostPort(parser, "--metric-addr", args.metric_addr)
        else:
            destHost = "127.0.0.1"
            destPort = app_config().getint("metric_listener", "plaintext_port")
    prefix = args.metric_prefix.strip()
    if not prefix or any(c.isspace() for c in prefix):
        parser.error(f"--metric-prefix must be a non-empty name without spaces, got {prefix!r}")
    if args.interval <= 0:
        parser.error(f"--interval must be positive, got {args.interval}")
    queues = [q.strip().rpartition("/")[2] for q in rmqQueues.split(",") if q.strip()]
    if not queues:
        parser.error("--rmq-queues names no queue")
    average = int(args.interval) if args.average_seconds is None else args.average_seconds
    return AgentOptions(rmqHost, rmqPort, rmqUser, rmqPass, bus.virtual_host,
                        queues, destHost, destPort, prefix, args.interval, max(0, average),
                        args.source, args.once)


class QueueDepthSampler:
    """Reads queue depths from the management API, falling back to passive declares."""

    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.management = RabbitmqManagementClient(options.rmqHost, options.rmqPort,
                                                   options.rmqUser, options.rmqPassword)
        self._warned = False

    def _fromManagement(self) -> dict[str, float]:
        opts = self.options
        samples = {ALLQ_AVG_READY_METRIC_FORMAT % {"metricPrefix": opts.metricPrefix}:
                   self.management.getTotalReadyMessages(opts.averageSeconds)}
        for queue in opts.queues:
            name = Q_AVG_READY_METRIC_FORMAT % {"metricPrefix": opts.metricPrefix,
                                                "queueName": queue}
            try:
                samples[name] = self.management.getQueueReadyMessages(
                    opts.vhost, queue, opts.averageSeconds)
            except QueueNotFoundError:
                g_log.warning("Queue %r does not exist (yet); not sampled", queue)
        return samples

    def _fromPassiveDeclares(self) -> dict[str, float]:
        opts = self.options
        samples: dict[str, float] = {}
        with MessageBus() as bus:
            for queue in opts.queues:
                name = Q_AVG_READY_METRIC_FORMAT % {"metricPrefix": opts.metricPrefix,
                                                    "queueName": queue}
                try:
                    samples[name] = float(bus.message_count(queue))
                except QueueNotFoundError:
                    g_log.warning("Queue %r does not exist (yet); not sampled", queue)
        return samples

    def sample(self) -> dict[str, float]:
        """{metric name: ready messages} of one sample."""
        if self.options.source == "amqp":
            return self._fromPassiveDeclares()
        try:
            return self._fromManagement()
        except ManagementApiUnavailable as exc:
            if self.options.source == "management":
                raise
            if not self._warned:
                g_log.warning("%s; using AMQP passive declares (no all-queues total)", exc)
                self._warned = True
            return self._fromPassiveDeclares()


def formatSamples(samples: dict[str, float], timestamp: float) -> list[str]:
    """Graphite plaintext lines ``name value timestamp``."""
    return [f"{name} {value!r} {int(timestamp)}" for name, value in samples.items()]


def emitSamples(lines: Sequence[str], host: str, port: int) -> None:
    """Send the lines to the metric listener over one TCP connection."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(("\n".join(lines) + "\n").encode())
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)


def runOnce(sampler: QueueDepthSampler) -> list[str]:
    """Take one sample, send it (or print it in a dry run); returns the lines."""
    opts = sampler.options
    lines = formatSamples(sampler.sample(), time.time())
    if opts.metricDestHost is None:
        for line in lines:
            print(line)
        sys.stdout.flush()
    else:
        assert opts.metricDestPort is not None
        emitSamples(lines, opts.metricDestHost, opts.metricDestPort)
        g_log.info("Sent %d samples to %s:%s", len(lines), opts.metricDestHost,
                   opts.metricDestPort)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see --help)."""
    options = parseArgs(argv)
    configureServiceLogging("rmq_metric_collector_agent")
    logging.getLogger("pika").setLevel(logging.ERROR)   # passive declares of missing queues
    sampler = QueueDepthSampler(options)
    if options.once:
        runOnce(sampler)
        return 0
    stop = StopFlag().install()
    nextSample = time.monotonic()
    while not stop.isSet:
        try:
            runOnce(sampler)
        except (BusError, OSError) as exc:   # broker or listener away: try again next time
            g_log.error("Sampling or sending failed: %s", exc)
        nextSample += options.interval
        while not stop.isSet and time.monotonic() < nextSample:
            time.sleep(min(1.0, max(0.0, nextSample - time.monotonic())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
