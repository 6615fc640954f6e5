"""Demo: stream a NAB series through the engine's graphite port and print the anomalies found.

Needs the engine running (``make run`` or ``skeleton_app/run.sh start``); ``make demo`` does
both. Steps: read the series (NAB's realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv from
../shared/nab/data by default, any NAB file with ``--nab realKnownCause/nyc_taxi.csv``, or any
``timestamp,value`` CSV with ``--file``); bind a queue to the model results exchange; create
the model through the custom datasource adapter (range: the file's min/max widened by 20%, as
NAB's HTM detector does); send every row as a graphite plaintext line to the metric listener's
TCP port; then print each row whose anomaly likelihood reaches ``--threshold`` as its result
arrives, with a progress bar, until every row is scored (or ``--timeout``); finally write a PNG
of the series with its anomalies marked (``--plot``; needs the plot extra) and say where.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.cli.plot import PlotError, metric_points, plot_points
from htmengine.cli.series import Row, SeriesError, parse_timestamp, read_series
from htmengine.config import app_config
from htmengine.exceptions import ObjectNotFoundError
from htmengine.pipeline.results_serialization import deserializeModelResult
from htmengine.repository import engineFactory, queries, schema
from nta_utils.message_bus import MessageBus

HERE = Path(__file__).resolve().parent
NAB_DIR = HERE.parent.parent / "shared" / "nab"
DEFAULT_NAB_KEY = "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv"
DEFAULT_FILE = NAB_DIR / "data" / DEFAULT_NAB_KEY
DEFAULT_WINDOWS = NAB_DIR / "labels" / "combined_windows.json"
RANGE_PADDING = 0.2  # NAB's HTM detector widens the file's range by 20% at each end
STATUS_ERROR = 4


# One error type for the demo: bad input (from read_series) and runs that cannot finish.
DemoError = SeriesError


def model_range(rows: list[Row]) -> tuple[float, float]:
    """(min, max) for the model: the series' range widened by 20% at each end."""
    low, high = min(r.value for r in rows), max(r.value for r in rows)
    if high <= low:
        high = low + 1
    padding = (high - low) * RANGE_PADDING
    return low - padding, high + padding


def load_windows(windows_file: Path, key: str) -> list[tuple[datetime, datetime]]:
    """NAB's labelled anomaly windows of the file `key` (category/name.csv), if known."""
    if not windows_file.is_file():
        return []
    windows = json.loads(windows_file.read_text()).get(key, [])
    return [(parse_timestamp(start, str(windows_file)), parse_timestamp(end, str(windows_file)))
            for start, end in windows]


def send_graphite(host: str, port: int, metric: str, rows: list[Row]) -> None:
    """Send every row as a ``<metric> <value> <timestamp>`` line over one TCP connection."""
    try:
        sock = socket.create_connection((host, port), timeout=30)
    except OSError as exc:
        raise DemoError(
            f"cannot connect to the metric listener at {host}:{port} ({exc}); is the engine "
            f"running? Start it with 'make run' (or skeleton_app/run.sh start)") from None
    with sock:
        for start in range(0, len(rows), 500):
            chunk = rows[start:start + 500]
            sock.sendall("".join(f"{metric} {row.value!r} {row.epoch}\n"
                                 for row in chunk).encode("utf-8"))


class ResultsWatcher:
    """Follows the results exchange for one metric: prints anomalies and progress."""

    def __init__(self, metric_id: str, rows: list[Row], threshold: float,
                 windows: list[tuple[datetime, datetime]]) -> None:
        self.metric_id = metric_id
        self.threshold = threshold
        self.windows = windows
        self.expected = len(rows)
        self.scored: set[int] = set()
        self.anomalies = 0
        self.started = time.monotonic()
        self._last_progress = 0.0
        self.bar: tqdm | None = None

    def _in_window(self, ts: datetime) -> str:
        if not self.windows:
            return ""
        inside = any(start <= ts <= end for start, end in self.windows)
        return "  (inside a NAB anomaly window)" if inside else "  (outside NAB's windows)"

    def handle(self, headers: dict[str, Any] | None, body: bytes) -> None:
        """Process one results exchange message."""
        message = deserializeModelResult(body)
        if (headers or {}).get("dataType") == "model-cmd-result":
            if message.get("modelId") == self.metric_id and message.get("status") != 0:
                raise DemoError(f"the model could not be created: {message.get('errorMessage')}")
            return
        if message["metric"]["uid"] != self.metric_id:
            return
        for result in message["results"]:
            if result["rowid"] in self.scored:
                continue  # redelivered (at-least-once)
            self.scored.add(result["rowid"])
            self._bar().update(1)
            likelihood = result["anomaly"] or 0.0
            if likelihood >= self.threshold:
                self.anomalies += 1
                ts = datetime.fromtimestamp(result["ts"], UTC).replace(tzinfo=None)
                self._bar().set_postfix(anomalies=self.anomalies)
                tqdm.write(f"ANOMALY row {result['rowid']:>6}  {ts:%Y-%m-%d %H:%M:%S}  "
                           f"value {result['value']:<12g} likelihood {likelihood:.6f}  "
                           f"raw {result['rawAnomaly']:.3f}{self._in_window(ts)}",
                           file=sys.stdout)
        sys.stdout.flush()
        if self.done:
            self.close()

    def _bar(self) -> tqdm:
        """The progress bar of scored rows (on stderr), created with the first result."""
        if self.bar is None:
            self.bar = tqdm(total=self.expected, unit="rows", desc="scored", file=sys.stderr,
                            mininterval=0.5)
            self.bar.set_postfix(anomalies=self.anomalies)
        return self.bar

    def close(self) -> None:
        """Finish the progress bar."""
        if self.bar is not None:
            self.bar.close()

    def progress(self, force: bool = False) -> None:
        """While nothing is scored yet, say so every 10 seconds (or now if `force`)."""
        now = time.monotonic()
        if self.scored or not (force or now - self._last_progress >= 10.0):
            return
        self._last_progress = now
        print(f"waiting for the first results ({now - self.started:.0f} s; the first model run "
              "after an install or upgrade compiles the HTM kernels, which can take a few "
              "minutes)", flush=True)

    @property
    def done(self) -> bool:
        """True when every sent row has a result."""
        return len(self.scored) >= self.expected


def _check_metric(metric_id: str) -> None:
    """DemoError if the metric went into ERROR (e.g. the model failed)."""
    with engineFactory().connect() as conn:
        metric = queries.getMetric(conn, metric_id, fields=[schema.metric.c.status,
                                                             schema.metric.c.message])
    if metric.status == STATUS_ERROR:
        raise DemoError(f"the model of {metric_id} is in ERROR: {metric.message}")


def run_demo(rows: list[Row], metric: str, threshold: float, timeout: float,
             windows: list[tuple[datetime, datetime]], host: str) -> ResultsWatcher:
    """Create the model, stream the rows, watch the results; returns the watcher."""
    config = app_config()
    port = config.getint("metric_listener", "plaintext_port")
    exchange = config.get("metric_streamer", "results_exchange_name")
    queue = f"demo.{metric}.{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout
    with MessageBus() as bus:
        bus.declare_fanout_exchange(exchange, durable=True)
        bus.declare_queue(queue, durable=True)
        try:
            bus.bind_queue(queue, exchange)
            low, high = model_range(rows)
            spec = {"datasource": "custom", "metricSpec": {"metric": metric},
                    "modelParams": {"min": low, "max": high}}
            # Fail early, before creating anything, if the listener is not there.
            send_graphite(host, port, metric, [])
            metric_id = createDatasourceAdapter("custom").monitorMetric(spec)
            print(f"model {metric_id} created for {metric} (min {low:g}, max {high:g}); "
                  f"sending {len(rows)} rows to {host}:{port}", flush=True)
            watcher = ResultsWatcher(metric_id, rows, threshold, windows)
            watcher.progress(force=True)
            send_graphite(host, port, metric, rows)
            for message in bus.consume(queue, prefetch=200, inactivity_timeout=1.0):
                if message is not None:
                    watcher.handle(message.headers, message.body)
                    bus.ack(message.delivery_tag)
                else:
                    watcher.progress()
                    _check_metric(metric_id)
                if watcher.done:
                    return watcher
                if time.monotonic() > deadline:
                    watcher.close()
                    raise DemoError(
                        f"timed out after {timeout:.0f} s with {len(watcher.scored)} of "
                        f"{watcher.expected} rows scored; see {run_dir()}/ (model_scheduler.log, "
                        f"metric_storer.log, anomaly_service.log)")
        finally:
            bus.delete_queue(queue)
    raise DemoError("the results consumer stopped unexpectedly")


def _resolve_input(args: argparse.Namespace) -> tuple[Path, str, Path]:
    """(data file, NAB key for the windows, windows file)."""
    if args.file:
        return Path(args.file), "", DEFAULT_WINDOWS
    key = args.nab or DEFAULT_NAB_KEY
    data = NAB_DIR / "data" / key
    if not data.is_file():
        raise DemoError(f"NAB file {key!r} not found under {NAB_DIR / 'data'} "
                        "(the NAB corpus is expected in ../shared/nab beside the repository)")
    return data, key, DEFAULT_WINDOWS


def run_dir() -> Path:
    """Where run.sh keeps the logs: $SKELETON_RUN_DIR, by default skeleton_app/logs."""
    return Path(os.environ.get("SKELETON_RUN_DIR") or HERE / "logs")


def _write_plot(metric_id: str, metric: str, path: Path, threshold: float) -> None:
    """Write the PNG of the scored series and say where (or why not)."""
    try:
        written, marked = plot_points(metric_points(engineFactory(), metric_id), path, metric,
                                      threshold)
    except PlotError as exc:
        print(f"no plot: {exc}", flush=True)
        return
    print(f"plot: {written.resolve()} (values with the {marked} anomalies marked, anomaly "
          "likelihood below)", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every row was scored."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--nab", help="a NAB file under ../shared/nab/data, e.g. "
                        "realKnownCause/nyc_taxi.csv")
    source.add_argument("--file", help="any CSV with a 'timestamp,value' header")
    parser.add_argument("--limit", type=int, default=None, help="send only the first N rows")
    parser.add_argument("--metric", help="metric name (default: demo.<file>.<time>)")
    parser.add_argument("--threshold", type=float, default=0.9999,
                        help="print rows whose anomaly likelihood is at least this "
                             "(default %(default)s)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up after this many seconds (default: 600 + rows/20)")
    parser.add_argument("--host", default="127.0.0.1", help="metric listener host")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="where to write the plot of the series with its anomalies marked "
                             "(default: <run dir>/<metric>.png, the run dir being "
                             "$SKELETON_RUN_DIR or skeleton_app/logs)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the plot")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit <= 0:
        parser.error(f"--limit must be positive, got {args.limit}")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        data_file, key, windows_file = _resolve_input(args)
        rows = read_series(data_file, args.limit)
        windows = load_windows(windows_file, key) if key else []
        metric = args.metric or f"demo.{data_file.stem}.{time.strftime('%Y%m%d%H%M%S')}"
        timeout = args.timeout if args.timeout is not None else 600 + len(rows) / 20
        print(f"{data_file}: {len(rows)} rows from {rows[0].timestamp} to "
              f"{rows[-1].timestamp}; {len(windows)} labelled anomaly window(s)", flush=True)
        watcher = run_demo(rows, metric, args.threshold, timeout, windows, args.host)
    except (DemoError, ObjectNotFoundError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - watcher.started
    if not args.no_plot:
        _write_plot(watcher.metric_id, metric, Path(args.plot or run_dir() / f"{metric}.png"),
                    args.threshold)
    webapp = "%s:%s" % (os.environ.get("SKELETON_WEBAPP_HOST", "127.0.0.1"),
                        os.environ.get("SKELETON_WEBAPP_PORT", "8080"))
    print(f"done: {watcher.expected} rows scored in {elapsed:.1f} s, {watcher.anomalies} "
          f"with anomaly likelihood >= {args.threshold}. The rows and their scores: "
          f"curl http://{webapp}/{metric}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
