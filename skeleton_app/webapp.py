"""The skeleton HTM Engine web application (web.py).

- ``PUT /<metric>`` with an optional JSON body of model params (``min``, ``max``,
  ``minResolution``) starts monitoring the metric: ``201 Created`` and ``Created <uid>``; when
  the model must first wait for data (no min and max, too few rows), a second line says so
  and how many rows it still needs.
- ``POST /<metric>`` with one or more ``value timestamp`` lines publishes the samples to the
  engine's custom-metrics queue: ``Saved /<metric> <value> @ <ts>`` per line, or, for a
  sample the metric storer would reject (not newer than the last stored sample or than the
  previous line, or a metric in ERROR), ``Rejected /<metric> <value> @ <ts>: <reason>`` (that
  sample is not published). A malformed line rejects the whole request (400, naming the
  line) and nothing of it is published.
- ``GET /<metric>`` lists ``/<metric> <value> <ts> <anomaly_score>`` per row in time order
  (``None`` while a row is unscored); an unknown metric is a 404.
- Responses are plain text; an unreachable message bus or database is a 503.
- Hostile input: a body over ``MAX_BODY_BYTES`` is a 413 however it is sent (Content-Length
  or chunked); a body shorter than its Content-Length is a 400 after ``BODY_TIMEOUT_SECONDS``;
  JSON nested deeper than ``MAX_JSON_DEPTH`` is a 400; values the model cannot encode and
  timestamps beyond the horizon are 400s naming the line (`sample_validation`). The server
  listens with a backlog of ``LISTEN_BACKLOG`` and ``NUM_THREADS`` worker threads.

The metric name is the path without its leading slash, so ``GET /cpu_percent`` shows the metric
that ``send_cpu.py`` feeds. Run with ``python skeleton_app/webapp.py [--host H] [--port P]``
(defaults 127.0.0.1:8080, or $SKELETON_WEBAPP_HOST / $SKELETON_WEBAPP_PORT).
"""

from __future__ import annotations

import argparse
import calendar
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import web
from cheroot import errors as cheroot_errors
from cheroot import wsgi
from sqlalchemy import exc as sa_exc

from htmengine import repository
from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.config import app_config
from htmengine.exceptions import InvalidInputError, MetricAlreadyMonitored, ObjectNotFoundError
from htmengine.metric_reasons import MetricState, metric_reason, sample_rejection
from htmengine.pipeline.plaintext import MAX_LINE_BYTES, parsePlaintext
from htmengine.pipeline.sample_validation import check_sample, future_horizon_seconds
from htmengine.repository import queries, schema
from htmengine.repository.metric_status import MetricStatus
from nta_utils.bounded_json import loads_bounded
from nta_utils.errors import BusError, DatabaseError, MessageLimitError
from nta_utils.message_bus import MessageBus

LOGGER = logging.getLogger("skeleton.webapp")
TEXT_PLAIN = "text/plain; charset=utf-8"
MODEL_PARAM_KEYS = ("min", "max", "minResolution")
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 8
BODY_TIMEOUT_SECONDS = 5.0
LISTEN_BACKLOG = 1024
NUM_THREADS = 64
_READ_BYTES = 65536
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

urls = ("/(.*)", "MetricResource")


class SamplePublisher:
    """One message-bus connection shared by the server's threads (pika is not thread-safe):
    publishes a request's samples as one persistent custom-metrics message."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bus: MessageBus | None = None

    def publish_lines(self, lines: list[str]) -> None:
        """Publish graphite lines as one message (all or nothing); declares the durable
        custom-metrics queue first, as the metric listener does, so samples posted before the
        engine first started are kept."""
        body = json.dumps({"protocol": "plain", "data": lines}).encode("utf-8")
        queue = app_config().get("metric_listener", "queue_name")
        with self._lock:
            if self._bus is None:
                self._bus = MessageBus()
            try:
                self._bus.declare_queue(queue, durable=True)
                self._bus.publish_to_queue(queue, body, persistent=True)
            except Exception:
                self._bus.close()
                self._bus = None
                raise

    def close(self) -> None:
        """Close the connection, if open."""
        with self._lock:
            if self._bus is not None:
                self._bus.close()
                self._bus = None


PUBLISHER = SamplePublisher()


def _fail(status: str, message: str) -> web.HTTPError:
    """Log a rejected request and build its plain-text error response."""
    LOGGER.warning("%s %s from %s: %s %s", web.ctx.method, web.ctx.path, web.ctx.ip, status,
                   message)
    return web.HTTPError(status, {"Content-Type": TEXT_PLAIN}, message + "\n")


@contextmanager
def _backend(what: str) -> Iterator[None]:
    """Translate an unreachable message bus or database into ``503 Service Unavailable``."""
    try:
        yield
    except BusError as exc:
        LOGGER.error("%s: message bus error: %s", what, exc)
        raise _fail("503 Service Unavailable",
                    f"Cannot {what}: the message bus is unavailable ({exc})") from None
    except (DatabaseError, sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        LOGGER.error("%s: database error: %s", what, exc)
        raise _fail("503 Service Unavailable",
                    f"Cannot {what}: the database is unavailable ({str(exc)[:300]})") from None


def _metric_name(path: str) -> str:
    """The metric name in the URL path (without the leading slash)."""
    if not path:
        raise _fail("400 Bad Request", "Missing metric name: use /<metric>")
    if any(ch.isspace() for ch in path) or not path.isprintable():
        raise _fail("400 Bad Request", f"Invalid metric name {path!r}: "
                    "it must not contain whitespace or control characters")
    return path


def _too_large(what: str) -> web.HTTPError:
    return _fail("413 Request Entity Too Large",
                 f"Request body {what} is larger than the limit of {MAX_BODY_BYTES} bytes")


def _request_body() -> bytes:
    """The request body: 413 when it is (or turns out, if chunked) larger than MAX_BODY_BYTES,
    400 when it is shorter than its Content-Length (the sender stopped or went silent for
    BODY_TIMEOUT_SECONDS)."""
    env = web.ctx.env
    length = env.get("CONTENT_LENGTH") or ""
    expected = int(length) if length.isdigit() else None
    if expected is not None and expected > MAX_BODY_BYTES:
        raise _too_large(f"of {length} bytes")
    stream = env["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    try:
        while expected is None or size < expected:
            want = _READ_BYTES if expected is None else min(_READ_BYTES, expected - size)
            chunk = stream.read(want)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _too_large("sent in chunks")
    except cheroot_errors.MaxSizeExceeded:
        raise _too_large("sent in chunks") from None
    except TimeoutError:
        raise _fail("400 Bad Request",
                    f"Request body shorter than its Content-Length {length}: got {size} bytes "
                    f"and then nothing for {BODY_TIMEOUT_SECONDS:g} s") from None
    except (ValueError, OSError) as exc:   # a malformed chunked encoding, a broken socket
        if "Request Entity Too Large" in str(exc):   # how cheroot's chunked reader says it
            raise _too_large("sent in chunks") from None
        raise _fail("400 Bad Request", f"Cannot read the request body: {exc}") from None
    if expected is not None and size < expected:
        raise _fail("400 Bad Request",
                    f"Request body shorter than its Content-Length {length}: got {size} bytes")
    return b"".join(parts)


def parse_sample_line(name: str, line: str,
                      horizon_seconds: float | None = None) -> tuple[float, int]:
    """(value, epoch seconds) of one ``value timestamp`` line, checked exactly as the engine's
    metric storer will check it; InvalidInputError (a ValueError) naming the problem."""
    if len(line.encode("utf-8", errors="surrogatepass")) > MAX_LINE_BYTES:
        raise InvalidInputError(f"line is longer than {MAX_LINE_BYTES} bytes")
    fields = line.split()
    if len(fields) != 2:
        raise InvalidInputError(
            f"expected 'value timestamp' (2 fields separated by a space), got {len(fields)} "
            f"field(s)")
    sample = parsePlaintext(f"{name} {fields[0]} {fields[1]}")
    horizon = future_horizon_seconds() if horizon_seconds is None else horizon_seconds
    check_sample(name, sample.value, sample.timestamp, horizon)
    return sample.value, calendar.timegm(sample.timestamp.timetuple())


def parse_model_params(body: bytes) -> dict[str, Any]:
    """The optional JSON object of model params in a PUT body; InvalidInputError naming the
    problem."""
    if not body.strip():
        return {}
    try:
        params = loads_bounded(body, max_bytes=MAX_BODY_BYTES, max_depth=MAX_JSON_DEPTH,
                               what="request body")
    except MessageLimitError as exc:
        raise InvalidInputError(f"Unable to parse request body as JSON: {exc}") from None
    if not isinstance(params, dict):
        raise InvalidInputError(
            f"Request body must be a JSON object of model params {list(MODEL_PARAM_KEYS)}, "
            f"got {type(params).__name__}")
    unknown = sorted(set(params) - set(MODEL_PARAM_KEYS))
    if unknown:
        raise InvalidInputError(
            f"Unknown model params {unknown}; allowed: {list(MODEL_PARAM_KEYS)}")
    return params


def _waiting_line(name: str, model_id: str) -> str:
    """A second PUT line when the new model waits for data (PENDING_DATA), else ''."""
    with repository.engineFactory().connect() as conn:
        metric = queries.getMetric(conn, model_id, fields=[schema.metric.c.status,
                                                           schema.metric.c.last_rowid])
    if metric.status != MetricStatus.PENDING_DATA:
        return ""
    return metric_reason(MetricState(
        name=name, status=metric.status, rows_stored=metric.last_rowid or 0, rows_scored=0,
        min_rows_for_model=app_config().getint("metric_storer", "min_rows_for_model"),
        start_hint=f'PUT /{name} with {{"min": ..., "max": ...}}')) + "\n"


def _storer_verdicts(name: str, samples: list[tuple[float, int]]) -> list[str | None]:
    """For each (value, epoch) sample in order, why the metric storer would reject it (None:
    it will be stored), judged from the newest stored sample and the earlier lines. Without
    the database only the lines among themselves are judged (publishing needs only the bus).
    """
    data = schema.metric_data.c
    previous = status = None
    try:
        with repository.engineFactory().connect() as conn:
            try:
                metric = queries.getCustomMetricByName(
                    conn, name, fields=[schema.metric.c.uid, schema.metric.c.status])
            except ObjectNotFoundError:
                metric = None
            if metric is not None:
                status = metric.status
                newest = queries.getMetricData(conn, metric.uid, fields=[data.timestamp],
                                               sort=data.rowid.desc(), limit=1).first()
                previous = newest.timestamp if newest is not None else None
    except (DatabaseError, sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        LOGGER.warning("POST /%s: cannot read the stored samples (%s); judging the lines "
                       "among themselves only", name, str(exc)[:200])
    verdicts: list[str | None] = []
    for _value, epoch in samples:
        timestamp = datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)
        reason = sample_rejection(timestamp, previous, status)
        verdicts.append(reason)
        if reason is None:
            previous = timestamp
    return verdicts


def _text(body: str) -> str:
    web.header("Content-Type", TEXT_PLAIN)
    return body


class MetricResource:
    """``/<metric>``: create a model (PUT), send samples (POST), list scored rows (GET)."""

    def PUT(self, path: str) -> str:  # noqa: N802 - web.py method names
        """Start monitoring the metric with optional model params."""
        name = _metric_name(path)
        try:
            params = parse_model_params(_request_body())
        except InvalidInputError as exc:
            raise _fail("400 Bad Request", str(exc)) from None
        spec = {"datasource": "custom", "metricSpec": {"metric": name}, "modelParams": params}
        try:
            with _backend(f"create the model of /{name}"):
                model_id = createDatasourceAdapter("custom").monitorMetric(spec)
        except MetricAlreadyMonitored as exc:
            raise _fail("400 Bad Request",
                        f"Model already exists for /{name} (uid {exc.uid})") from None
        except InvalidInputError as exc:
            raise _fail("400 Bad Request", f"Invalid model params for /{name}: {exc}") from None
        LOGGER.info("Created model %s for /%s with params %s", model_id, name, params)
        with _backend(f"read the model status of /{name}"):
            waiting = _waiting_line(name, model_id)
        web.ctx.status = "201 Created"
        return _text(f"Created {model_id}\n{waiting}")

    def POST(self, path: str) -> str:  # noqa: N802
        """Check every ``value timestamp`` line, then publish them all in one message."""
        name = _metric_name(path)
        try:
            text = _request_body().decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("400 Bad Request", "Request body is not UTF-8 text") from None
        numbered = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
                    if line.strip()]
        if not numbered:
            raise _fail("400 Bad Request", "Empty request body: expected 'value timestamp' lines")
        samples = []
        horizon = future_horizon_seconds()
        for number, line in numbered:
            try:
                samples.append(parse_sample_line(name, line, horizon))
            except InvalidInputError as exc:
                raise _fail("400 Bad Request", f"Malformed line {number} {line.strip()!r}: "
                            f"{exc}; nothing from this request was stored") from None
        with _backend(f"store samples of /{name}"):
            verdicts = _storer_verdicts(name, samples)
            accepted = [sample for sample, reason in zip(samples, verdicts, strict=True)
                        if reason is None]
            if accepted:
                PUBLISHER.publish_lines([f"{name} {value!r} {ts:d}" for value, ts in accepted])
        return _text("".join(
            f"Saved /{name} {value:f} @ {ts:d}\n" if reason is None
            else f"Rejected /{name} {value:f} @ {ts:d}: {reason}\n"
            for (value, ts), reason in zip(samples, verdicts, strict=True)))

    def GET(self, path: str) -> str:  # noqa: N802
        """List the metric's rows in time order with their anomaly scores."""
        name = _metric_name(path)
        data = schema.metric_data.c
        with _backend(f"read /{name}"), repository.engineFactory().connect() as conn:
            try:
                metric = queries.getCustomMetricByName(conn, name, fields=[schema.metric.c.uid])
            except ObjectNotFoundError:
                raise _fail("404 Not Found", f"Unknown metric /{name}") from None
            rows = queries.getMetricData(
                conn, metricId=metric.uid,
                fields=[data.metric_value, data.timestamp, data.anomaly_score],
                sort=[data.timestamp.asc(), data.rowid.asc()]).fetchall()
        return _text("".join(
            f"/{name} {row.metric_value} {calendar.timegm(row.timestamp.timetuple())} "
            f"{row.anomaly_score}\n" for row in rows))


def _not_found() -> web.HTTPError:
    return web.HTTPError("404 Not Found", {"Content-Type": TEXT_PLAIN}, "Not found\n")


def _internal_error() -> web.HTTPError:
    LOGGER.exception("%s %s failed", web.ctx.method, web.ctx.path)
    return web.HTTPError("500 Internal Server Error", {"Content-Type": TEXT_PLAIN},
                         "Internal server error; see the web app's log\n")


def make_app() -> web.application:
    """The web.py application (no debug reloader, plain-text error pages)."""
    web.config.debug = False
    app = web.application(urls, globals(), autoreload=False)
    app.notfound = _not_found
    app.internalerror = _internal_error
    return app


def make_server(host: str, port: int) -> wsgi.Server:
    """A cheroot WSGI server for the application on (host, port)."""
    server = wsgi.Server((host, port), make_app().wsgifunc(), numthreads=NUM_THREADS,
                         server_name="skeleton-webapp", request_queue_size=LISTEN_BACKLOG,
                         timeout=int(BODY_TIMEOUT_SECONDS))
    server.max_request_body_size = MAX_BODY_BYTES
    return server


def main(argv: list[str] | None = None) -> int:
    """Serve the application until SIGINT/SIGTERM; 1 if it cannot listen."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("SKELETON_WEBAPP_HOST", DEFAULT_HOST),
                        help="address to bind (default %(default)s; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("SKELETON_WEBAPP_PORT", DEFAULT_PORT)),
                        help="port to listen on (default %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    server = make_server(args.host, args.port)

    def stop(signum: int, _frame: Any) -> None:
        LOGGER.info("signal %d: stopping", signum)
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.prepare()
    except OSError as exc:
        LOGGER.error("cannot listen on %s:%d: %s (--host/--port or SKELETON_WEBAPP_HOST/"
                     "SKELETON_WEBAPP_PORT choose another address)", args.host, args.port, exc)
        return 1
    LOGGER.info("serving on http://%s:%d/", *server.bind_addr[:2])
    try:
        server.serve()
    finally:
        PUBLISHER.close()
        LOGGER.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
