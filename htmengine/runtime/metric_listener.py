"""Metric listener: accepts graphite plaintext samples (``name value timestamp\\n``) over TCP
(and, optionally, UDP) and publishes them in batches to the custom-metrics queue.

Run with ``python -m htmengine.runtime.metric_listener [--host H] [--port P] [--udp]``;
defaults come from application.conf ``[metric_listener]``.

One asyncio event loop serves every connection. Lines of one connection are batched (at most
``MAX_BATCH_SIZE`` per message) and a batch is published when it is full, when the sender
pauses for ``flushPause`` seconds, ``MAX_BATCH_AGE_SEC`` after its first line, or at EOF. Publishing is done by one dedicated thread that
owns the only MessageBus of the process (pika is not thread-safe); a connection waits for its
batch to be confirmed before reading on, which gives natural back-pressure.

Every line is checked here (the storer checks again): a line longer than ``MAX_LINE_BYTES``,
not UTF-8, not ``name value timestamp``, with a value the model cannot encode or a timestamp
beyond the horizon (`sample_validation`) is dropped and logged once with its source.

Loss window: plaintext over TCP has no acknowledgement. On SIGTERM the listener stops
accepting, drains every open connection until its sender pauses (at most ``DRAIN_SECONDS``)
and publishes everything it read, so nothing sent before the signal is lost. A kill -9 loses
the lines read but not yet confirmed by the broker (at most ``READ_CHUNK_BYTES`` of lines per
connection, in practice the lines of the last ``MAX_BATCH_AGE_SEC`` + one publish round trip)
and whatever the kernel still buffered for the process; bench/listener_loss.py measures it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from htmengine import engine_metrics
from htmengine.config import app_config
from htmengine.exceptions import InvalidInputError
from htmengine.pipeline.plaintext import (
    MAX_LINE_BYTES,
    Protocol,
    decodeLine,
    encodeBatchMessage,
    parsePlaintext,
)
from htmengine.pipeline.sample_validation import (
    DEFAULT_FUTURE_HORIZON_SECONDS,
    check_sample,
    future_horizon_seconds,
    utc_now_naive,
)
from htmengine.runtime.service_support import configureServiceLogging, service_argument_parser
from nta_utils.bus import Bus
from nta_utils.errors import BusError, UnroutableMessageError
from nta_utils.message_bus import MessageBus

__all__ = ["MAX_BATCH_SIZE", "MAX_LINE_BYTES", "MetricListener", "Protocol", "QueuePublisher",
           "parsePlaintext"]

_log = logging.getLogger("htmengine.runtime.metric_listener")

MAX_BATCH_SIZE = 200
DEFAULT_FLUSH_PAUSE_SEC = 0.01
# A partial batch is published at the latest this long after its first line was read.
MAX_BATCH_AGE_SEC = 0.05
READ_CHUNK_BYTES = 65536
PUBLISH_RETRY_SECONDS = 30.0
# On SIGTERM: a connection is drained until its sender pauses for IDLE_POLL_SECONDS, for at most
# DRAIN_SECONDS.
DRAIN_SECONDS = 5.0
IDLE_POLL_SECONDS = 0.2


def _defaultBusFactory() -> MessageBus:
    """A MessageBus on the configured broker (the listener's default bus factory)."""
    return MessageBus()


class QueuePublisher:
    """Publishes batch messages to the custom-metrics queue from one dedicated thread that owns
    the process's only MessageBus; `publish` is awaited from the event loop."""

    def __init__(self, queueName: str, busFactory: Callable[[], Bus] = _defaultBusFactory,
                 retrySeconds: float = PUBLISH_RETRY_SECONDS) -> None:
        self.queueName = queueName
        self._busFactory = busFactory
        self._retrySeconds = retrySeconds
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bus-publisher")
        self._bus: Bus | None = None
        self.publishedMessages = 0
        self.publishedLines = 0

    def _openBus(self) -> Bus:
        if self._bus is None:
            bus = self._busFactory()
            bus.declare_queue(self.queueName, durable=True)
            self._bus = bus
        return self._bus

    def _dropBus(self) -> None:
        if self._bus is not None:
            try:
                self._bus.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                _log.debug("Ignoring error while closing a broken bus", exc_info=True)
            self._bus = None

    def _publishSync(self, body: bytes, numLines: int) -> None:
        deadline = time.monotonic() + self._retrySeconds
        delay = 0.2
        while True:
            try:
                bus = self._openBus()
                try:
                    bus.publish_to_queue(self.queueName, body, persistent=True)
                except UnroutableMessageError:
                    # The queue was deleted under us: declare it again and retry once.
                    _log.warning("Queue %s missing; declaring it again", self.queueName)
                    bus.declare_queue(self.queueName, durable=True)
                    bus.publish_to_queue(self.queueName, body, persistent=True)
                self.publishedMessages += 1
                self.publishedLines += numLines
                return
            except BusError as error:
                self._dropBus()
                if time.monotonic() + delay > deadline:
                    _log.error("Dropping a batch of %d lines: could not publish to %s: %r",
                               numLines, self.queueName, error)
                    return
                _log.debug("Publish to %s failed (%r); retrying in %.1fs",
                           self.queueName, error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def publish(self, lines: list[str], source: str | None) -> None:
        """Publish one batch message (persistent, publisher-confirmed)."""
        body = encodeBatchMessage(lines, source)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._publishSync, body, len(lines))

    def close(self) -> None:
        """Close the bus in its own thread and stop the thread."""
        self._executor.submit(self._dropBus).result()
        self._executor.shutdown(wait=True)


class LineSplitter:
    """Splits a byte stream into stripped, non-empty, checked text lines; drops (and logs once
    with the source) over-long lines, whether they arrived in one read or several, and lines
    that are not valid samples."""

    def __init__(self, source: str,
                 horizonSeconds: float = DEFAULT_FUTURE_HORIZON_SECONDS) -> None:
        self._source = source
        self._horizonSeconds = horizonSeconds
        self._pending = b""
        self._discarding = False
        self.rejected = 0

    def _reject(self) -> None:
        """Count a line rejected here (the storer never sees it): received and malformed."""
        self.rejected += 1
        engine_metrics.SAMPLES_RECEIVED.inc()
        engine_metrics.SAMPLES_REJECTED.labels("malformed").inc()

    def _accept(self, parts: list[bytes]) -> list[str]:
        lines = []
        now = utc_now_naive()
        for raw in parts:
            if len(raw) > MAX_LINE_BYTES:
                self._reject()
                _log.warning("Dropping a line longer than %d bytes from %s: %r...",
                             MAX_LINE_BYTES, self._source, raw[:80])
                continue
            if not raw.strip():
                continue
            try:
                text = decodeLine(raw).strip()
                sample = parsePlaintext(text)
                check_sample(sample.metricName, sample.value, sample.timestamp,
                             self._horizonSeconds, now)
            except InvalidInputError as error:
                self._reject()
                _log.warning("Rejecting a line from %s: %s", self._source, error)
                continue
            lines.append(text)
        return lines

    def feed(self, chunk: bytes) -> list[str]:
        """Complete lines contained in `chunk` and what was left over before it."""
        data = self._pending + chunk
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                self._pending = b""
                return []
            data = data[newline + 1:]
            self._discarding = False
        parts = data.split(b"\n")
        self._pending = parts.pop()
        if len(self._pending) > MAX_LINE_BYTES:
            _log.warning("Dropping a line longer than %d bytes from %s: %r...",
                         MAX_LINE_BYTES, self._source, self._pending[:80])
            self._pending = b""
            self._discarding = True
        return self._accept(parts)

    def finish(self) -> list[str]:
        """The last line when the stream ended without a newline."""
        rest = b"" if self._discarding else self._pending
        self._pending = b""
        return self._accept([rest])


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: MetricListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:  # noqa: D102
        self._listener._onDatagram(data, addr)


class MetricListener:
    """The graphite plaintext server (TCP, plus UDP when `udp` is true) feeding `publisher`."""

    def __init__(self, publisher: QueuePublisher, host: str = "127.0.0.1", port: int = 2003,
                 udp: bool = False, flushPause: float = DEFAULT_FLUSH_PAUSE_SEC,
                 horizonSeconds: float = DEFAULT_FUTURE_HORIZON_SECONDS) -> None:
        self.publisher = publisher
        self.horizonSeconds = horizonSeconds
        self._stopping = False
        self.host = host
        self.port = port
        self.udp = udp
        self.flushPause = flushPause
        self.activeConnections = 0
        self._tcpServer: asyncio.base_events.Server | None = None
        self._udpTransport: asyncio.DatagramTransport | None = None
        self._udpBatches: dict[tuple[Any, ...], list[str]] = {}
        self._udpFlushHandle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Bind the TCP (and UDP) sockets; returns once they listen."""
        self._tcpServer = await asyncio.start_server(
            self._handleTcp, self.host, self.port, reuse_address=True, limit=READ_CHUNK_BYTES)
        bound = self._tcpServer.sockets[0].getsockname()
        self.port = bound[1]
        if self.udp:
            loop = asyncio.get_running_loop()
            self._udpTransport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self.port))
        _log.info("Listening for graphite plaintext on %s:%d (tcp%s); queue=%s",
                  self.host, self.port, ", udp" if self.udp else "", self.publisher.queueName)

    async def stop(self) -> None:
        """Stop accepting, drain every connection until its sender pauses (at most
        DRAIN_SECONDS), publish everything read and wait for the publishes."""
        self._stopping = True
        if self._tcpServer is not None:
            self._tcpServer.close()
        if self._udpTransport is not None:
            self._udpTransport.close()
            self._flushUdp()
        # Each read loop sees _stopping, reads on until its sender pauses, then publishes
        # what it holds and closes the connection.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=DRAIN_SECONDS + PUBLISH_RETRY_SECONDS)
        for writer in list(self._writers):
            writer.close()
        _log.info("Listener stopped; published %d messages with %d lines",
                  self.publisher.publishedMessages, self.publisher.publishedLines)

    def _track(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _handleTcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._serveConnection(reader, writer)
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)

    async def _serveConnection(self, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        source = f"tcp:{peer[0]}:{peer[1]}"
        self.activeConnections += 1
        _log.info("Receiving samples from %s (connections=%d)", source, self.activeConnections)
        splitter = LineSplitter(source, self.horizonSeconds)
        batch: list[str] = []
        batchStarted = 0.0
        received = 0
        drainDeadline: float | None = None
        try:
            while True:
                if self._stopping and drainDeadline is None:
                    drainDeadline = time.monotonic() + DRAIN_SECONDS
                if drainDeadline is not None and time.monotonic() > drainDeadline:
                    _log.warning("Stopping: %s still sending after %.0fs; closing it",
                                 source, DRAIN_SECONDS)
                    break
                if batch:
                    # publish on a pause of the sender, and at the latest MAX_BATCH_AGE_SEC
                    # after the batch's first line even if the sender never pauses
                    wait = min(self.flushPause, batchStarted + MAX_BATCH_AGE_SEC
                               - time.monotonic())
                else:
                    # wake up now and then to notice a stop request
                    wait = IDLE_POLL_SECONDS
                try:
                    if wait <= 0:
                        raise TimeoutError
                    chunk = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), wait)
                except TimeoutError:
                    if batch:
                        await self.publisher.publish(batch, source)
                        batch = []
                    elif self._stopping:
                        break   # drained: the sender paused
                    continue
                except ConnectionError as error:
                    _log.warning("Connection from %s broken: %r", source, error)
                    break
                if not chunk:
                    break
                for line in splitter.feed(chunk):
                    if not batch:
                        batchStarted = time.monotonic()
                    batch.append(line)
                    received += 1
                    if len(batch) >= MAX_BATCH_SIZE:
                        await self.publisher.publish(batch, source)
                        batch = []
            batch.extend(splitter.finish())
            if batch:
                await self.publisher.publish(batch, source)
        finally:
            self.activeConnections -= 1
            writer.close()
            _log.info("Connection from %s closed after %d lines", source, received)

    def _onDatagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        splitter = LineSplitter(f"udp:{addr[0]}:{addr[1]}", self.horizonSeconds)
        lines = splitter.feed(data) + splitter.finish()
        if not lines:
            return
        batch = self._udpBatches.setdefault(addr, [])
        batch.extend(lines)
        if len(batch) >= MAX_BATCH_SIZE:
            del self._udpBatches[addr]
            for start in range(0, len(batch), MAX_BATCH_SIZE):
                self._track(self.publisher.publish(batch[start:start + MAX_BATCH_SIZE],
                                                   f"udp:{addr[0]}:{addr[1]}"))
        elif self._udpFlushHandle is None:
            loop = asyncio.get_running_loop()
            self._udpFlushHandle = loop.call_later(self.flushPause, self._flushUdp)

    def _flushUdp(self) -> None:
        self._udpFlushHandle = None
        batches, self._udpBatches = self._udpBatches, {}
        for addr, lines in batches.items():
            self._track(self.publisher.publish(lines, f"udp:{addr[0]}:{addr[1]}"))


async def _serve(listener: MetricListener) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await listener.start()
    await stopping.wait()
    _log.info("Stop requested")
    await listener.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m htmengine.runtime.metric_listener``."""
    parser = service_argument_parser(__doc__)
    parser.add_argument("--host", help="address to bind (default: [metric_listener] host)")
    parser.add_argument("--port", type=int,
                        help="TCP (and UDP) port (default: [metric_listener] plaintext_port)")
    parser.add_argument("--udp", action=argparse.BooleanOptionalAction, default=None,
                        help="also accept one sample per line in UDP datagrams on the port "
                             "(default: [metric_listener] udp_enabled)")
    parser.add_argument("--flush-pause", type=float, default=DEFAULT_FLUSH_PAUSE_SEC,
                        help="seconds of sender silence after which a partial batch is sent")
    args = parser.parse_args(argv)
    configureServiceLogging("htmengine.runtime.metric_listener")
    config = app_config()
    if args.host is None:
        args.host = config.get("metric_listener", "host")
    if args.port is None:
        args.port = config.getint("metric_listener", "plaintext_port")
    if args.udp is None:
        args.udp = config.getboolean("metric_listener", "udp_enabled")
    engine_metrics.start_heartbeat("metric_listener")
    publisher = QueuePublisher(config.get("metric_listener", "queue_name"))
    listener = MetricListener(publisher, args.host, args.port, args.udp, args.flush_pause,
                              future_horizon_seconds())
    try:
        asyncio.run(_serve(listener))
    except OSError as error:
        _log.error("Cannot listen on %s:%d: %s (another listener running? change "
                   "application.conf [metric_listener] plaintext_port or --port)",
                   args.host, args.port, error.strerror or error)
        return 1
    finally:
        publisher.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
