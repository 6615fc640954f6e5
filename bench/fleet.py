"""A fleet of mature models at a low sample rate, in real time: the engine's capacity claim.

    python bench/fleet.py --models N --period S --minutes M [--slots K] [--seeds 4]
                          [--train-rows 5000] [--memory-budget-mb MB] [--no-warmup]

In a throw-away environment (own database, RabbitMQ virtual host, queue names, checkpoint root
and graphite port; all removed afterwards) the four services run as processes. Set-up:
``--seeds`` metrics are monitored and trained through the engine on the first
``--train-rows`` records of real NAB series (sent over graphite as a backlog); then N metrics
are created whose models are copies of the trained ones, made with the engine's
``cloneModel`` (the seed metric's likelihood state is copied too), so every model is mature.
Unless ``--no-warmup``, each metric first gets one sample (spread over one period) and the run
waits until all are scored, so the measured phase sees the steady state (the warm-up time is
printed). Then every metric sends one sample every S seconds over graphite, spread evenly and
in real time, for M minutes (values continue the seed's NAB series).

Printed: samples/s sent and scored; latency p50 / p99 / max from sending a sample to its
``anomaly_score`` being committed in MySQL (observed on the results exchange, which the
anomaly service publishes to right after the commit); samples not scored by the end (counted
in MySQL, after a grace of one period, at most 120 s); the largest total RSS of all engine
processes (the services and the slot processes); CPU seconds per service during the measured
phase; model loads (swaps), checkpoints and evictions per second (and of those, the evictions
that wrote no checkpoint: the model's few rows since its checkpoint are replayed from
metric_data when it is loaded again); per scored sample, the CPU ms of the scheduler's own
process and of its slot processes, the loads, and the stored rows replayed per load (new rows
applied through the replay count too). The last line is
``models=N period_s=S minutes=M sent=… scored=… p50_s=… p99_s=… max_s=… unscored=…
rss_gb=…``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_support import (  # noqa: E402
    REPO,
    SERVICES,
    BenchEnvironment,
    ResultCollector,
    cpuSeconds,
    override,
    startServices,
    stopServices,
)

NAB_DATA = REPO.parent / "shared" / "nab" / "data"
SEED_SERIES = ("realKnownCause/nyc_taxi.csv", "realKnownCause/machine_temperature_system_failure.csv",
               "realKnownCause/cpu_utilization_asg_misconfiguration.csv",
               "realKnownCause/ambient_temperature_system_failure.csv",
               "realTweets/Twitter_volume_AAPL.csv", "realTweets/Twitter_volume_GOOG.csv")


def progress(label: str, done: int, total: int, started: float) -> None:
    """A one-line progress bar on stderr."""
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r  {label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                     f"{time.monotonic() - started:.0f}s")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def loadSeries(relative: str) -> list[tuple[datetime, float]]:
    """(timestamp, value) rows of a NAB csv."""
    with open(NAB_DATA / relative, newline="") as f:
        return [(datetime.strptime(r["timestamp"], "%Y-%m-%d %H:%M:%S"), float(r["value"]))
                for r in csv.DictReader(f)]


def scoredCount(engine, uids: list[str]) -> int:  # noqa: ANN001
    """Rows of `uids` with an anomaly_score committed."""
    import sqlalchemy as sa

    from htmengine.repository import schema
    md = schema.metric_data
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(md)
                                .where(md.c.uid.in_(uids))
                                .where(md.c.anomaly_score.is_not(None))).scalar_one())


def sendLines(port: int, lines: list[str]) -> None:
    """Send graphite lines over one TCP connection."""
    import socket
    with socket.create_connection(("127.0.0.1", port), 10) as sock:
        sock.sendall("".join(lines).encode())


def waitListener(port: int, processes: list) -> None:  # noqa: ANN001
    """Wait until the metric listener accepts connections."""
    import socket
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError("the metric listener did not come up") from None
            time.sleep(0.2)


class Seed:
    """A trained seed metric: its uid, series and where the clones continue it."""

    def __init__(self, name: str, series: list[tuple[datetime, float]], trainRows: int) -> None:
        self.name = name
        self.series = series
        self.trainRows = trainRows
        self.uid = ""

    def value(self, k: int) -> float:
        """The k-th value after the training rows (wrapping around the rest of the series)."""
        rest = self.series[self.trainRows:] or self.series
        return rest[k % len(rest)][1]


def trainSeeds(env: BenchEnvironment, adapter, engine, processes, count: int,  # noqa: ANN001
               trainRows: int) -> list[Seed]:
    """Monitor `count` seed metrics and stream their first `trainRows` NAB records."""
    seeds = []
    for index, relative in enumerate(SEED_SERIES[:count]):
        series = loadSeries(relative)
        if len(series) < trainRows:
            raise SystemExit(f"{relative} has {len(series)} rows < --train-rows {trainRows}")
        seed = Seed(f"fleet.seed{index}", series, trainRows)
        values = [v for _, v in series[:trainRows]]
        seed.uid = adapter.monitorMetric({
            "datasource": "custom", "metricSpec": {"metric": seed.name},
            "modelParams": {"min": min(values), "max": max(values)}})
        seeds.append(seed)
    waitListener(env.port, processes)
    for seed in seeds:   # one connection per seed: its lines stay in order
        sendLines(env.port, [f"{seed.name} {v!r} {int(ts.replace(tzinfo=UTC).timestamp())}\n"
                             for ts, v in seed.series[:trainRows]])
    started = time.monotonic()
    total = len(seeds) * trainRows
    uids = [s.uid for s in seeds]
    while (done := scoredCount(engine, uids)) < total:
        progress("training seed models", done, total, started)
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(f"a service died; see logs in {env.tmp}")
        time.sleep(2)
    progress("training seed models", total, total, started)
    return seeds


def cloneFleet(numModels: int, seeds: list[Seed], engine) -> list[tuple[str, str, Seed]]:  # noqa: ANN001
    """N metrics whose models are clones of the seeds' (round robin): (name, uid, seed)."""
    from htmengine.adapters.datasource import createDatasourceAdapter
    from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
    from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
    from htmengine.pipeline.metric_streamer import STREAMED_ROWID_KEY
    from htmengine.repository import queries
    from htmengine.repository.queries import MetricStatus

    adapter = createDatasourceAdapter("custom", engine=engine)
    with engine.connect() as conn:
        seedParams = {s.uid: json.loads(queries.getMetric(conn, s.uid).model_params)
                      for s in seeds}
    fleet = []
    started = time.monotonic()
    with ModelSwapperInterface() as swapper:
        for i in range(numModels):
            seed = seeds[i % len(seeds)]
            name = f"fleet.m{i:05d}"
            uid = adapter.createMetric(name)
            swapper.cloneModel(seed.uid, uid, uuid.uuid4().hex)
            params = dict(seedParams[seed.uid])
            params.pop(STREAMED_ROWID_KEY, None)
            with engine.begin() as conn:
                queries.updateMetricColumns(conn, uid, {
                    "status": int(MetricStatus.ACTIVE), "model_params": json.dumps(params),
                    "parameters": json.dumps({"datasource": "custom",
                                              "metricSpec": {"metric": name}})})
            fleet.append((name, uid, seed))
            if i % 50 == 0:
                progress("cloning models", i, numModels, started)
    manager = ModelCheckpointMgr()
    while (done := sum(manager.hasModel(uid) for _, uid, _ in fleet)) < numModels:
        progress("cloning models", done, numModels, started)
        time.sleep(1)
    progress("cloning models", numModels, numModels, started)
    return fleet


class Sender(threading.Thread):
    """Sends sample k of metric i at start + k * period + i * period / N (real time)."""

    def __init__(self, port: int, fleet: list[tuple[str, str, Seed]], period: float,
                 rounds: int, firstSample: int) -> None:
        super().__init__(daemon=True)
        self.port, self.fleet, self.period, self.rounds = port, fleet, period, rounds
        self.firstSample = firstSample
        self.sent: dict[tuple[str, int], float] = {}
        self.start_at = 0.0
        self.done = threading.Event()

    def run(self) -> None:  # noqa: D102
        import socket
        n = len(self.fleet)
        self.start_at = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), 10) as sock:
            for k in range(self.rounds):
                for i, (name, uid, seed) in enumerate(self.fleet):
                    at = self.start_at + k * self.period + i * self.period / n
                    delay = at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    sample = self.firstSample + k
                    line = f"{name} {seed.value(sample + i)!r} {int(time.time())}\n"
                    sock.sendall(line.encode())
                    self.sent[(uid, sample + 1)] = time.monotonic()
        self.done.set()


def engineProcesses(processes) -> list[psutil.Process]:  # noqa: ANN001
    """The service processes and their children (slots), alive now."""
    result = []
    for p in processes:
        try:
            proc = psutil.Process(p.pid)
            result.append(proc)
            result.extend(proc.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return result


SLOT_COUNTERS = ("slotLoads", "slotCheckpoints", "slotEvictions", "slotDrops",
                 "slotReplayedRows")


def slotCounters(env: BenchEnvironment) -> dict[str, int]:
    """Cumulative loads / checkpoints / evictions / drops (evictions that wrote no
    checkpoint) of the slots, from the scheduler log (a counter it lacks counts 0)."""
    log = (env.tmp / "model_scheduler_service.log").read_text(errors="replace")
    latest: dict[str, dict[str, int]] = {}
    for match in re.finditer(r"slot (\d+): model=\S+ \w+ \(([^)]*)\)", log):
        fields = dict(kv.split("=", 1) for kv in match.group(2).split() if "=" in kv)
        if "slotLoads" in fields:
            latest[match.group(1)] = {k: int(fields.get(k, 0)) for k in SLOT_COUNTERS}
    return {k: sum(c[k] for c in latest.values()) for k in SLOT_COUNTERS}


class RssSampler(threading.Thread):
    """Samples the total RSS of the engine processes every second; keeps the maximum."""

    def __init__(self, processes) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.processes = processes
        self.maxBytes = 0
        self.stop = threading.Event()

    def run(self) -> None:  # noqa: D102
        while not self.stop.wait(1.0):
            total = 0
            for proc in engineProcesses(self.processes):
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.maxBytes = max(self.maxBytes, total)


def schedulerCpuSplit(processes) -> tuple[float, float]:  # noqa: ANN001
    """CPU seconds (user + system) of the model scheduler's own process and of its children
    (the slot processes)."""
    for module, p in zip(SERVICES, processes, strict=True):
        if not module.endswith(".model_scheduler_service"):
            continue
        try:
            proc = psutil.Process(p.pid)
            own = proc.cpu_times()
            children = proc.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0.0, 0.0
        slots = 0.0
        for child in children:
            try:
                times = child.cpu_times()
                slots += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return own.user + own.system, slots
    return 0.0, 0.0


def percentile(values: list[float], fraction: float) -> float:
    """The `fraction` quantile of sorted `values` (nearest rank)."""
    return values[min(len(values) - 1, int(fraction * len(values)))]


def run(args: argparse.Namespace) -> None:
    """Set up, warm up, measure and print."""
    with BenchEnvironment() as env:
        import os

        if args.memory_budget_mb:
            os.environ[override("model-swapper.conf", "model_scheduler",
                                "memory_budget_mb")] = str(args.memory_budget_mb)
        from htmengine.adapters.datasource import createDatasourceAdapter
        from htmengine.repository import engineFactory

        engine = engineFactory()
        adapter = createDatasourceAdapter("custom", engine=engine)
        setupStarted = time.monotonic()
        processes = startServices(env, args.slots)
        collector = ResultCollector(env.env[override("application.conf", "metric_streamer",
                                                     "results_exchange_name")])
        collector.start()
        collector.ready.wait(30)
        sampler = RssSampler(processes)
        sampler.start()
        try:
            seeds = trainSeeds(env, adapter, engine, processes, min(args.seeds, args.models),
                               args.train_rows)
            fleet = cloneFleet(args.models, seeds, engine)
            uids = [uid for _, uid, _ in fleet]
            print(f"set-up: {len(seeds)} seed models trained on {args.train_rows} NAB records "
                  f"each, {args.models} clones, in {time.monotonic() - setupStarted:.0f}s",
                  flush=True)
            first = 0
            if not args.no_warmup:
                warmStarted = time.monotonic()
                warm = Sender(env.port, fleet, args.period, 1, 0)
                warm.start()
                while scoredCount(engine, uids) < args.models:
                    progress("warm-up (one sample per model)", scoredCount(engine, uids),
                             args.models, warmStarted)
                    time.sleep(2)
                    if any(p.poll() is not None for p in processes):
                        raise RuntimeError(f"a service died; see logs in {env.tmp}")
                progress("warm-up (one sample per model)", args.models, args.models,
                         warmStarted)
                print(f"warm-up: every model scored one sample in "
                      f"{time.monotonic() - warmStarted:.0f}s", flush=True)
                first = 1
            rounds = max(1, int(args.minutes * 60 // args.period))
            cpu0, counters0 = cpuSeconds(processes), slotCounters(env)
            split0 = schedulerCpuSplit(processes)
            sampler.maxBytes = 0
            collector.received.clear()
            sender = Sender(env.port, fleet, args.period, rounds, first)
            sender.start()
            measureStarted = time.monotonic()
            while not sender.done.wait(5):
                progress("measuring (real time)", int(time.monotonic() - measureStarted),
                         int(rounds * args.period), measureStarted)
                if any(p.poll() is not None for p in processes):
                    print(f"  a service died; see logs in {env.tmp}", flush=True)
                    break
            progress("measuring (real time)", int(rounds * args.period),
                     int(rounds * args.period), measureStarted)
            sendSeconds = time.monotonic() - sender.start_at
            grace = min(args.period, 120.0)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and not all(
                    key in collector.received for key in sender.sent):
                time.sleep(0.5)
            elapsed = time.monotonic() - sender.start_at
            cpu1, counters1 = cpuSeconds(processes), slotCounters(env)
            split1 = schedulerCpuSplit(processes)
            sent = len(sender.sent)
            expected = first * args.models + sent
            scoredRows = scoredCount(engine, uids)
            unscored = expected - scoredRows
            latencies = sorted(collector.received[key] - at for key, at in sender.sent.items()
                               if key in collector.received)
            scored = len(latencies)
            p50 = statistics.median(latencies) if latencies else float("nan")
            p99 = percentile(latencies, 0.99) if latencies else float("nan")
            worst = latencies[-1] if latencies else float("nan")
            rssGb = sampler.maxBytes / 2**30
            print(f"sent {sent} samples in {sendSeconds:.0f}s = {sent / sendSeconds:.2f}/s; "
                  f"scored {scored} = {scored / elapsed:.2f}/s", flush=True)
            print(f"latency send -> anomaly_score committed: p50 {p50:.2f}s p99 {p99:.2f}s "
                  f"max {worst:.2f}s; unscored after {grace:.0f}s grace: {unscored}")
            print("cpu seconds: " + " ".join(f"{k}={cpu1[k] - cpu0.get(k, 0):.1f}"
                                             for k in cpu1))
            window = elapsed
            print(f"per second: loads (swaps) "
                  f"{(counters1['slotLoads'] - counters0['slotLoads']) / window:.2f}, "
                  f"checkpoints "
                  f"{(counters1['slotCheckpoints'] - counters0['slotCheckpoints']) / window:.2f}"
                  f", evictions "
                  f"{(counters1['slotEvictions'] - counters0['slotEvictions']) / window:.2f}"
                  f" (without a checkpoint "
                  f"{(counters1['slotDrops'] - counters0['slotDrops']) / window:.2f})")
            loads = counters1["slotLoads"] - counters0["slotLoads"]
            perSample = max(scored, 1)
            print(f"per scored sample: cpu ms scheduler process "
                  f"{1000 * (split1[0] - split0[0]) / perSample:.1f}, slots "
                  f"{1000 * (split1[1] - split0[1]) / perSample:.1f}; loads "
                  f"{loads / perSample:.2f}; stored rows replayed per load "
                  f"{(counters1['slotReplayedRows'] - counters0['slotReplayedRows']) / max(loads, 1):.2f}")
            print(f"models={args.models} period_s={args.period:g} minutes={args.minutes:g} "
                  f"sent={sent} scored={scored} p50_s={p50:.2f} p99_s={p99:.2f} "
                  f"max_s={worst:.2f} unscored={unscored} rss_gb={rssGb:.2f}", flush=True)
        finally:
            sampler.stop.set()
            collector.stop.set()
            stopServices(processes)
            collector.join(10)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, required=True, help="metrics (models) N")
    parser.add_argument("--period", type=float, required=True,
                        help="seconds between two samples of one metric")
    parser.add_argument("--minutes", type=float, required=True, help="measured minutes")
    parser.add_argument("--slots", type=int, default=0, help="scheduler slots (0: auto)")
    parser.add_argument("--seeds", type=int, default=4, help="trained models to clone")
    parser.add_argument("--train-rows", type=int, default=5000,
                        help="NAB records each seed model is trained on")
    parser.add_argument("--memory-budget-mb", type=int, default=0,
                        help="model-swapper.conf memory_budget_mb (0: its default)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="measure from the first sample of each model")
    args = parser.parse_args(argv)
    if args.models < 1 or args.period <= 0 or args.minutes <= 0:
        parser.error("--models, --period and --minutes must be positive")
    if not 1 <= args.seeds <= len(SEED_SERIES):
        parser.error(f"--seeds must be in 1..{len(SEED_SERIES)}")
    run(args)


if __name__ == "__main__":
    main()
