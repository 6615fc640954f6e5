"""Throughput and latency of the whole engine: graphite socket -> scored rows.

    python bench/engine.py [--models 1 100 1000] [--rows N] [--rate SAMPLES_PER_S]
                           [--slots N] [--timeout S] [--ingest-only]

For each model count, in a throw-away environment (own database, RabbitMQ virtual host,
checkpoint root and port; removed afterwards) the four services are started as processes, the
metrics are created and monitored with a fixed range (so their models exist from the first
sample), and ``--rows`` samples per metric are sent over one TCP connection, metric-interleaved
(as many monitored hosts report every 5 minutes), at full speed or paced at ``--rate``.

Printed per run: samples/s sustained from the first sample sent until every row is scored (raw
and likelihood scores in ``metric_data``), and the end-to-end latency p50/p99 from sending a
sample to receiving its scored result on the results exchange. With full-speed sending the
latency includes the queueing behind the backlog; pace with ``--rate`` to see the latency of an
engine that keeps up. ``--ingest-only`` runs just the listener and the storer (metrics not
monitored) and prints the samples/s stored. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

T0 = 1430000000
SERVICES = ("htmengine.model_swapper.model_scheduler_service", "htmengine.runtime.anomaly_service",
            "htmengine.runtime.metric_storer", "htmengine.runtime.metric_listener")


def _freePort() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _override(configFile: str, section: str, option: str) -> str:
    root = Path(configFile).stem.upper().replace("-", "_")
    return f"_NTA_UTILS_CONFIG__{root}__{section.upper()}__{option.upper()}"


class BenchEnvironment:
    """Own database, vhost, queue names, checkpoint root and port; applied to os.environ."""

    def __init__(self) -> None:
        token = uuid.uuid4().hex[:8]
        self.prefix = f"bench_{token}"
        self.db = f"htmengine_bench_{token}"
        self.vhost = f"htmengine_bench_{token}"
        self.tmp = Path(tempfile.mkdtemp(prefix="htmengine-bench-"))
        self.port = _freePort()
        self.env = {
            "APPLICATION_CONFIG_PATH": str(REPO / "conf"),
            _override("application.conf", "repository", "db"): self.db,
            _override("application.conf", "metric_streamer", "results_exchange_name"):
                f"{self.prefix}.model.results",
            _override("application.conf", "metric_listener", "queue_name"):
                f"{self.prefix}.metric.custom.data",
            _override("application.conf", "metric_listener", "plaintext_port"): str(self.port),
            _override("model-swapper.conf", "interface_bus", "results_queue"):
                f"{self.prefix}.mswapper.results",
            _override("model-swapper.conf", "interface_bus", "model_input_queue_prefix"):
                f"{self.prefix}.mswapper.model.input.",
            _override("model-swapper.conf", "interface_bus", "scheduler_notification_queue"):
                f"{self.prefix}.mswapper.scheduler.notification",
            _override("model-checkpoint.conf", "storage", "root"): str(self.tmp / "checkpoints"),
            _override("rabbitmq.conf", "connection", "virtual_host"): self.vhost,
        }

    def __enter__(self) -> BenchEnvironment:
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", self.vhost], check=True,
                       capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", self.vhost, "guest",
                        ".*", ".*", ".*"], check=True, capture_output=True)
        os.environ.update(self.env)
        subprocess.run([sys.executable, str(REPO / "repository" / "migrate.py")], check=True,
                       env=dict(os.environ), cwd=REPO, capture_output=True)
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], capture_output=True)
        import sqlalchemy as sa

        from htmengine.repository import engineFactory
        engineFactory().dispose()
        server = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306/")
        with server.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{self.db}`")
        server.dispose()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _startServices(env: BenchEnvironment, slots: int,
                   modules: tuple[str, ...] = SERVICES) -> list[subprocess.Popen]:
    processes = []
    for module in modules:
        args = (["--num-slots", str(slots)]
                if slots > 0 and module.endswith("scheduler_service") else [])
        log = open(env.tmp / f"{module.rsplit('.', 1)[-1]}.log", "w")  # noqa: SIM115
        processes.append(subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                          stdout=log, stderr=subprocess.STDOUT))
    return processes


def _stopServices(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()


class ResultCollector(threading.Thread):
    """Receives the results exchange; records when each (metric uid, rowid) was published."""

    def __init__(self, exchange: str) -> None:
        super().__init__(daemon=True)
        self.exchange = exchange
        self.received: dict[tuple[str, int], float] = {}
        self.stop = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:  # noqa: D102
        from htmengine.runtime.results_serialization import deserializeModelResult
        from nta_utils.message_bus import MessageBus

        queue = f"{self.exchange}.bench"
        with MessageBus() as bus:
            bus.declare_fanout_exchange(self.exchange, durable=True)
            bus.declare_queue(queue, durable=False)
            bus.bind_queue(queue, self.exchange)
            self.ready.set()
            for message in bus.consume(queue, prefetch=500, inactivity_timeout=0.2):
                if message is not None:
                    now = time.monotonic()
                    body = deserializeModelResult(message.body)
                    uid = body.get("metric", {}).get("uid")
                    for result in body.get("results", []):
                        self.received.setdefault((uid, result["rowid"]), now)
                    bus.ack(message.delivery_tag)
                if self.stop.is_set():
                    break


def runIngestOnly(numMetrics: int, rowsPerMetric: int, timeout: float) -> None:
    """Listener + storer only (metrics not monitored): samples/s until every row is stored."""
    with BenchEnvironment() as env:
        import sqlalchemy as sa

        from htmengine.repository import engineFactory, schema

        engine = engineFactory()
        processes = _startServices(env, 0, modules=SERVICES[2:])
        try:
            names = [f"bench.m{i:04d}" for i in range(numMetrics)]
            started = time.monotonic()
            _send(env.port, names, names, rowsPerMetric, None, processes)
            total = numMetrics * rowsPerMetric
            stored = 0
            while stored < total and time.monotonic() - started < timeout:
                with engine.connect() as conn:
                    stored = int(conn.execute(
                        sa.select(sa.func.coalesce(sa.func.sum(schema.metric.c.last_rowid), 0))
                    ).scalar_one())
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            print(f"ingest-only metrics={numMetrics} rows/metric={rowsPerMetric} "
                  f"stored={stored}/{total} throughput={stored / elapsed:.0f} samples/s "
                  f"(graphite socket -> metric_data rows, no models)", flush=True)
        finally:
            _stopServices(processes)


def runOnce(numModels: int, rowsPerModel: int, rate: float | None, slots: int,
            timeout: float) -> None:
    """One measurement; prints one line of figures."""
    with BenchEnvironment() as env:
        from htmengine.adapters.datasource import createDatasourceAdapter
        from htmengine.repository import engineFactory

        engine = engineFactory()
        adapter = createDatasourceAdapter("custom", engine=engine)
        names = [f"bench.m{i:04d}" for i in range(numModels)]
        started = time.monotonic()
        uids = [adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                       "modelParams": {"min": 0, "max": 100}})
                for name in names]
        print(f"  created {numModels} models in {time.monotonic() - started:.1f}s", flush=True)
        collector = ResultCollector(env.env[_override("application.conf", "metric_streamer",
                                                      "results_exchange_name")])
        collector.start()
        collector.ready.wait(30)
        processes = _startServices(env, slots)
        try:
            sendTimes = _send(env.port, names, uids, rowsPerModel, rate, processes)
            total = numModels * rowsPerModel
            sentAt = min(sendTimes.values())
            deadline = time.monotonic() + timeout
            while len(collector.received) < total and time.monotonic() < deadline:
                if any(p.poll() is not None for p in processes):
                    print("  a service died; see logs in", env.tmp)
                    break
                time.sleep(0.5)
            done = len(collector.received)
            lastAt = max(collector.received.values(), default=sentAt)
            latencies = sorted(collector.received[key] - sendTimes[key]
                               for key in collector.received if key in sendTimes)
            if not latencies:
                print(f"  models={numModels}: nothing scored within {timeout:.0f}s")
                return
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            print(f"models={numModels} rows/model={rowsPerModel} scored={done}/{total} "
                  f"throughput={done / max(lastAt - sentAt, 1e-9):.1f} samples/s "
                  f"latency_p50={p50:.2f}s latency_p99={p99:.2f}s slots={slots}"
                  + (f" rate={rate:g}/s" if rate else " rate=full-speed"), flush=True)
        finally:
            collector.stop.set()
            _stopServices(processes)
            collector.join(10)


def _send(port: int, names: list[str], uids: list[str], rows: int, rate: float | None,
          processes: list[subprocess.Popen]) -> dict[tuple[str, int], float]:
    deadline = time.monotonic() + 120
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), 1)
            break
        except OSError:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("the metric listener did not come up") from None
            time.sleep(0.2)
    sendTimes: dict[tuple[str, int], float] = {}
    interval = 1.0 / rate if rate else 0.0
    nextAt = time.monotonic()
    with sock:
        for row in range(rows):
            chunk = []
            for name in names:
                value = 50 + 30 * ((row // 6) % 2) + (hash(name) % 7)
                chunk.append(f"{name} {value} {T0 + 300 * row}\n")
            if rate:
                for index, line in enumerate(chunk):
                    nextAt += interval
                    delay = nextAt - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    sock.sendall(line.encode())
                    sendTimes[(uids[index], row + 1)] = time.monotonic()
            else:
                sock.sendall("".join(chunk).encode())
                now = time.monotonic()
                for uid in uids:
                    sendTimes[(uid, row + 1)] = now
    return sendTimes


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark for each model count and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--rows", type=int, default=None,
                        help="samples per metric (default: 2000 / 20 / 5 for 1 / 100 / 1000)")
    parser.add_argument("--rate", type=float, default=None, help="samples/s (default: full)")
    parser.add_argument("--slots", type=int, default=0, help="model scheduler slots (0: auto)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--ingest-only", action="store_true",
                        help="only listener + storer, metrics not monitored")
    args = parser.parse_args(argv)
    for numModels in args.models:
        if args.ingest_only:
            rows = args.rows or 100_000 // numModels
            print(f"run: ingest only, {numModels} metrics x {rows} rows", flush=True)
            runIngestOnly(numModels, rows, args.timeout)
            continue
        rows = args.rows or {1: 2000, 100: 20}.get(numModels, 5)
        print(f"run: {numModels} models x {rows} rows", flush=True)
        runOnce(numModels, rows, args.rate, args.slots, args.timeout)


if __name__ == "__main__":
    main()
