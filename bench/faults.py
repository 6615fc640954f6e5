"""Fault runs of the whole engine under supervisord, on a MariaDB server and a RabbitMQ node this
script starts for itself on free ports (the machine's shared servers are never stopped).

    python bench/faults.py [--metrics 4] [--rows 400] [--outage 15] [--timeout 300]
                           [--faults reference kill9-storer ...]

Faults: reference (none), kill9-listener, kill9-storer, kill9-scheduler, kill9-slot,
kill9-anomaly, restart-rabbitmq, restart-mariadb (the server stopped for --outage seconds, then
started again on the same port and data).

Each run has its own database, queue prefix, checkpoint root, run directory and ports. The
engine is started with scripts/run-engine.sh (supervisord restarts what dies, as in
production), the metrics are monitored with a fixed range, the first half of every metric's
rows is sent and scored, then the second half is sent paced over ~4 s with the fault injected
1 s into it (the sender reconnects when the listener is gone). The run ends when every stored
row is scored or after --timeout.

One table row per run: sent lines; stored rows; scored rows (raw score in metric_data); scored
twice (rows published again on the results exchange with other values than the first time);
lost (sent - scored); raw_eq and equal (scored rows whose raw score, and whose raw and
likelihood scores, equal the reference run's for the same metric and timestamp; the likelihood
depends on where result batches start, which timing decides); recovered (every stored row scored with nobody's help); recovery
(seconds from the fault - for a restart, from the server answering again - until the engine
scored a row again). Figures are printed, never asserted; the last line is key=value.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "htmengine" / "runtime")]

import sqlalchemy as sa  # noqa: E402
from supervised_support import SupervisedEngine, listenerUp  # noqa: E402

from bench.bench_support import freePort, override  # noqa: E402
from bench.private_servers import PrivateMariaDB, PrivateRabbitMQ  # noqa: E402

FAULTS = ("reference", "kill9-listener", "kill9-storer", "kill9-scheduler", "kill9-slot",
          "kill9-anomaly", "restart-rabbitmq", "restart-mariadb")
PROGRAM_OF = {"kill9-listener": "metric_listener", "kill9-storer": "metric_storer",
              "kill9-scheduler": "model_scheduler", "kill9-anomaly": "anomaly_service"}
T0 = 1430000000


def sampleValue(metric: int, row: int) -> float:
    """A deterministic value (square wave with a ramp) of `row` of metric number `metric`."""
    return float(20 + 10 * metric + 40 * ((row // 6) % 2) + (row % 5))


@dataclass
class RunResult:
    """Figures of one run."""

    fault: str
    sent: int = 0
    stored: int = 0
    scored: int = 0
    scoredTwice: int = 0
    equal: int | None = None
    rawEqual: int | None = None
    recovered: bool = False
    recovery: float | None = None
    scores: dict[tuple[int, object], tuple[float, float]] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        """Sent lines without a scored row."""
        return self.sent - self.scored


class Sender(threading.Thread):
    """Sends lines to the listener paced over `seconds`, reconnecting when it is gone."""

    def __init__(self, port: int, lines: list[str], seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.lines, self.seconds = port, lines, seconds

    def run(self) -> None:
        chunk = max(1, len(self.lines) // 40)
        pause = self.seconds / 40
        position = 0
        sock: socket.socket | None = None
        while position < len(self.lines):
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                sock.sendall("".join(self.lines[position:position + chunk]).encode())
                position += chunk
                time.sleep(pause)
            except OSError:      # the listener is gone: what was in flight is lost
                if sock is not None:
                    sock.close()
                sock = None
                time.sleep(0.2)
        if sock is not None:
            sock.close()


def counts(engine: sa.Engine, prefix: str) -> tuple[int, int]:
    """(stored, scored) rows of the run's metrics."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT COUNT(*), COUNT(d.raw_anomaly_score) FROM metric_data d "
            "JOIN metric m ON m.uid = d.uid WHERE m.name LIKE :p"), {"p": prefix + "%"}).one()
    return int(row[0]), int(row[1])


def storedScores(engine: sa.Engine, names: list[str]) -> dict[tuple[int, object], tuple]:
    """{(metric number, timestamp): (raw, likelihood)} of the scored rows (by timestamp: a
    line lost before storing shifts the rowids of the rows after it)."""
    out: dict[tuple[int, int], tuple] = {}
    with engine.connect() as conn:
        for index, name in enumerate(names):
            for timestamp, raw, score in conn.execute(sa.text(
                    "SELECT d.timestamp, d.raw_anomaly_score, d.anomaly_score FROM metric_data d "
                    "JOIN metric m ON m.uid = d.uid WHERE m.name = :n AND "
                    "d.raw_anomaly_score IS NOT NULL"), {"n": name}):
                out[(index, timestamp)] = (raw, score)
    return out


def runOnce(fault: str, args: argparse.Namespace, db: PrivateMariaDB, mq: PrivateRabbitMQ,
            workDir: Path) -> RunResult:
    """One run of the engine with `fault` injected mid-stream."""
    from htmengine.adapters.datasource import createDatasourceAdapter
    from htmengine.pipeline.results_serialization import deserializeModelResult
    from htmengine.repository import engineFactory
    from nta_utils.message_bus import MessageBus

    token = uuid.uuid4().hex[:8]
    prefix = f"faults_{token}"
    runDir = workDir / f"{fault}-{token}"
    (runDir / "checkpoints").mkdir(parents=True)
    port = freePort()
    env = {
        "APPLICATION_CONFIG_PATH": str(REPO / "conf"),
        override("application.conf", "repository", "port"): str(db.port),
        override("application.conf", "repository", "db"): f"htmengine_{token}",
        override("rabbitmq.conf", "connection", "port"): str(mq.port),
        override("rabbitmq.conf", "connection", "virtual_host"): "/",
        override("application.conf", "metric_streamer", "results_exchange_name"):
            f"{prefix}.model.results",
        override("application.conf", "metric_listener", "queue_name"):
            f"{prefix}.metric.custom.data",
        override("application.conf", "metric_listener", "plaintext_port"): str(port),
        override("application.conf", "api", "port"): str(freePort()),
        override("application.conf", "alerts", "queue_name"): f"{prefix}.alerts.results",
        override("model-swapper.conf", "interface_bus", "results_queue"):
            f"{prefix}.mswapper.results",
        override("model-swapper.conf", "interface_bus", "model_input_queue_prefix"):
            f"{prefix}.mswapper.model.input.",
        override("model-swapper.conf", "interface_bus", "scheduler_notification_queue"):
            f"{prefix}.mswapper.scheduler.notification",
        override("model-checkpoint.conf", "storage", "root"): str(runDir / "checkpoints"),
        override("model-swapper.conf", "model_scheduler", "num_slots"): "2",
    }
    os.environ.update(env)
    subprocess.run([sys.executable, str(REPO / "repository" / "migrate.py")], check=True,
                   env=dict(os.environ), cwd=REPO, capture_output=True)
    engine = engineFactory()
    names = [f"{prefix}.m{i}" for i in range(args.metrics)]
    result = RunResult(fault)
    bus = MessageBus()
    probeQueue = f"{prefix}.probe"
    bus.declare_fanout_exchange(f"{prefix}.model.results", durable=True)
    bus.declare_queue(probeQueue, durable=True)
    bus.bind_queue(probeQueue, f"{prefix}.model.results")
    published: dict[tuple[str, int], tuple] = {}
    supervised = SupervisedEngine(dict(os.environ), runDir / "run")
    (runDir / "run").mkdir()
    started = supervised.runScript("start")
    if started.returncode != 0:
        raise RuntimeError(f"run-engine.sh start failed: {started.stdout}{started.stderr}")
    try:
        deadline = time.monotonic() + 60
        while not listenerUp(port) and time.monotonic() < deadline:
            time.sleep(0.3)
        adapter = createDatasourceAdapter("custom", engine=engine)
        for name in names:
            adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                   "modelParams": {"min": 0, "max": 100}})
        half = args.rows // 2

        def lines(rows: range) -> list[str]:
            return [f"{name} {sampleValue(i, r)!r} {T0 + 300 * r}\n" for r in rows
                    for i, name in enumerate(names)]

        Sender(port, lines(range(half)), 0.5).run()
        waitScored(engine, prefix, half * len(names), args.timeout)
        sender = Sender(port, lines(range(half, args.rows)), 4.0)
        sender.start()
        time.sleep(1.0)
        faultEnd = inject(fault, supervised, db, mq, args.outage)
        _, scoredAtFault = counts(engine, prefix)
        result.sent = args.rows * len(names)
        sender.join(args.timeout)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            stored, scored = counts(engine, prefix)
            if result.recovery is None and scored > scoredAtFault:
                result.recovery = time.monotonic() - faultEnd
            if stored == scored and stored >= result.sent - (
                    result.sent if fault == "kill9-listener" else 0):
                time.sleep(3)     # late duplicates, if any, arrive meanwhile
                if counts(engine, prefix) == (stored, scored):
                    break
            time.sleep(0.5)
        result.stored, result.scored = counts(engine, prefix)
        result.recovered = result.stored == result.scored and result.stored > 0
        while (message := bus.get(probeQueue)) is not None:
            bus.ack(message.delivery_tag)
            body = deserializeModelResult(message.body)
            for item in body.get("results", []):
                key = (body["metric"]["uid"], item["rowid"])
                values = (item["rawAnomaly"], item["anomaly"])
                if key in published and published[key] != values:
                    result.scoredTwice += 1
                published.setdefault(key, values)
        result.scores = storedScores(engine, names)
    finally:
        supervised.runScript("stop")
        bus.delete_queue(probeQueue)
        bus.close()
        engine.dispose()
        with sa.create_engine(f"mysql+pymysql://root@127.0.0.1:{db.port}/").begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `htmengine_{token}`")
    return result


def waitScored(engine: sa.Engine, prefix: str, rows: int, timeout: float) -> None:
    """Wait until `rows` rows of the run are scored."""
    deadline = time.monotonic() + timeout
    while counts(engine, prefix)[1] < rows:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rows} rows not scored within {timeout} s")
        time.sleep(0.3)


def inject(fault: str, supervised: SupervisedEngine, db: PrivateMariaDB,
           mq: PrivateRabbitMQ, outage: float) -> float:
    """Inject `fault`; returns when it ended (monotonic time)."""
    if fault in PROGRAM_OF:
        os.kill(supervised.pid(PROGRAM_OF[fault]), signal.SIGKILL)
    elif fault == "kill9-slot":
        slots = supervised.slotPids()
        if slots:
            os.kill(slots[0], signal.SIGKILL)
    elif fault.startswith("restart-"):
        server = mq if fault == "restart-rabbitmq" else db
        server.stop()
        time.sleep(outage)
        server.start()
    return time.monotonic()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=4)
    parser.add_argument("--rows", type=int, default=400, help="rows per metric")
    parser.add_argument("--outage", type=float, default=15.0, help="seconds a server is down")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    args = parser.parse_args(argv)
    faults = ["reference", *[f for f in args.faults if f != "reference"]]
    workDir = Path(tempfile.mkdtemp(prefix="htmengine-faults-"))
    db, mq = PrivateMariaDB(workDir / "mariadb"), PrivateRabbitMQ(workDir / "rabbitmq")
    db.start()
    mq.start()
    results: list[RunResult] = []
    try:
        print(f"{'fault':18} {'sent':>6} {'stored':>6} {'scored':>6} {'twice':>5} {'lost':>5} "
              f"{'raw_eq':>6} {'equal':>6} {'recovered':>9} {'recovery_s':>10}", flush=True)
        for fault in faults:
            result = runOnce(fault, args, db, mq, workDir)
            reference = results[0].scores if results else result.scores
            result.equal = sum(1 for key, values in result.scores.items()
                               if reference.get(key) == values)
            result.rawEqual = sum(1 for key, values in result.scores.items()
                                  if key in reference and reference[key][0] == values[0])
            results.append(result)
            recovery = "-" if result.recovery is None else f"{result.recovery:.1f}"
            print(f"{fault:18} {result.sent:6} {result.stored:6} {result.scored:6} "
                  f"{result.scoredTwice:5} {result.lost:5} {result.rawEqual:6} {result.equal:6} "
                  f"{'yes' if result.recovered else 'NO':>9} {recovery:>10}", flush=True)
    finally:
        mq.stop()
        db.stop()
    faulty = results[1:]
    print(f"runs={len(results)} metrics={args.metrics} rows={args.rows} "
          f"lost_except_listener={sum(r.lost for r in faulty if r.fault != 'kill9-listener')} "
          f"listener_lost={sum(r.lost for r in faulty if r.fault == 'kill9-listener')} "
          f"scored_twice={sum(r.scoredTwice for r in results)} "
          f"raw_unequal={sum(r.scored - (r.rawEqual or 0) for r in faulty)} "
          f"unequal={sum(r.scored - (r.equal or 0) for r in faulty)} "
          f"recovered={sum(r.recovered for r in results)}/{len(results)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
