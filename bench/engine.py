"""Throughput and latency of the whole engine: graphite socket -> scored rows.

    python bench/engine.py [--models 1 100 1000] [--rows N] [--rate SAMPLES_PER_S]
                           [--slots N] [--timeout S] [--ingest-only] [--keep-logs DIR]

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
monitored) and prints the samples/s stored. ``--keep-logs DIR`` copies the services' logs of
each run to ``DIR/<models>-<n>/`` before the environment is removed. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_support import (  # noqa: E402
    SERVICES,
    BenchEnvironment,
    ResultCollector,
    cpuSeconds,
    override,
    startServices,
    stopServices,
)

T0 = 1430000000


def runIngestOnly(numMetrics: int, rowsPerMetric: int, timeout: float) -> None:
    """Listener + storer only (metrics not monitored): samples/s until every row is stored."""
    with BenchEnvironment() as env:
        import sqlalchemy as sa

        from htmengine.repository import engineFactory, schema

        engine = engineFactory()
        processes = startServices(env, 0, modules=SERVICES[2:])
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
            stopServices(processes)


def _keepLogs(env: BenchEnvironment, keepLogs: Path | None, numModels: int) -> None:
    """Copy the run's service logs to a new folder of `keepLogs` (if given)."""
    if keepLogs is None:
        return
    run = 1
    while (keepLogs / f"{numModels}-{run}").exists():
        run += 1
    target = keepLogs / f"{numModels}-{run}"
    target.mkdir(parents=True)
    for log in env.tmp.glob("*.log"):
        shutil.copy(log, target / log.name)
    print(f"  logs kept in {target}", flush=True)


def runOnce(numModels: int, rowsPerModel: int, rate: float | None, slots: int,
            timeout: float, keepLogs: Path | None = None) -> None:
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
        collector = ResultCollector(env.env[override("application.conf", "metric_streamer",
                                                      "results_exchange_name")])
        collector.start()
        collector.ready.wait(30)
        processes = startServices(env, slots)
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
            print("  cpu seconds: " + " ".join(f"{k}={v:.1f}"
                                               for k, v in cpuSeconds(processes).items()),
                  flush=True)
        finally:
            collector.stop.set()
            stopServices(processes)
            collector.join(10)
            _keepLogs(env, keepLogs, numModels)


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
    parser.add_argument("--keep-logs", type=Path, default=None, metavar="DIR",
                        help="copy each run's service logs to DIR/<models>-<n>/")
    args = parser.parse_args(argv)
    for numModels in args.models:
        if args.ingest_only:
            rows = args.rows or 100_000 // numModels
            print(f"run: ingest only, {numModels} metrics x {rows} rows", flush=True)
            runIngestOnly(numModels, rows, args.timeout)
            continue
        rows = args.rows or {1: 2000, 100: 20}.get(numModels, 5)
        print(f"run: {numModels} models x {rows} rows", flush=True)
        runOnce(numModels, rows, args.rate, args.slots, args.timeout, args.keep_logs)


if __name__ == "__main__":
    main()
