"""Helpers of test_engine_supervised.py: the engine under supervisord started with
``scripts/run-engine.sh`` (as ``make run-engine`` does), graphite senders, the results exchange
probe, and uninterrupted in-process reference runs of the model and of the likelihood."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from process_support import wait_for as waitFor

REPO_ROOT = Path(__file__).resolve().parents[3]
RUN_ENGINE = REPO_ROOT / "scripts" / "run-engine.sh"
SUPERVISORCTL = REPO_ROOT / ".venv" / "bin" / "supervisorctl"
SUPERVISORD_CONF = REPO_ROOT / "conf" / "supervisord.conf"
PROGRAMS = ("model_scheduler", "metric_listener", "metric_storer", "anomaly_service", "api",
            "alert_service")
T0 = 1430000000   # first sample's epoch (5-minute samples after it)


def pidAlive(pid: int) -> bool:
    """True if process `pid` exists (and is not a zombie we could not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


class SupervisedEngine:
    """The four services under supervisord, started and stopped by scripts/run-engine.sh with
    the session's overrides and a private run directory (socket, pid file, supervisord log)."""

    def __init__(self, env: dict[str, str], runDir: Path) -> None:
        self.runDir = runDir
        self.env = {**env, "HTMENGINE_RUN_DIR": str(runDir), "PYTHONUNBUFFERED": "1"}
        self.seenPids: set[int] = set()

    def runScript(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``scripts/run-engine.sh <command>``, output captured."""
        return subprocess.run([str(RUN_ENGINE), command], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def ctl(self, *args: str) -> str:
        """supervisorctl with the engine's configuration; its standard output."""
        return subprocess.run([str(SUPERVISORCTL), "-c", str(SUPERVISORD_CONF), *args],
                              cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
                              timeout=60).stdout

    def supervisordPid(self) -> int | None:
        """supervisord's pid from the run directory's pid file (None if missing)."""
        pidFile = self.runDir / "supervisord.pid"
        return int(pidFile.read_text()) if pidFile.exists() else None

    def pid(self, program: str) -> int:
        """The pid of `program` if supervisord reports it RUNNING, else 0."""
        status = self.ctl("status", f"htmengine:{program}")
        if " RUNNING " not in status:
            return 0
        text = self.ctl("pid", f"htmengine:{program}").strip()
        pid = int(text) if text.isdigit() else 0
        if pid:
            self.seenPids.add(pid)
        return pid

    def waitRestarted(self, program: str, oldPid: int, timeout: float = 60) -> int:
        """Wait until supervisord runs `program` again under a pid other than `oldPid`."""
        return waitFor(lambda: (lambda p: p if p and p != oldPid else 0)(self.pid(program)),
                       timeout, interval=0.3, what=f"supervisord to restart {program}")

    def slotPids(self) -> list[int]:
        """Pids of the model scheduler's slot processes: its children other than
        multiprocessing's resource tracker (slots are forked from it at start-up, spawned when
        one is started again after it died)."""
        schedulerPid = self.pid("model_scheduler")
        if not schedulerPid:
            return []
        children = Path(f"/proc/{schedulerPid}/task/{schedulerPid}/children").read_text()
        pids = []
        for child in map(int, children.split()):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmdline:
                pids.append(child)
        self.seenPids.update(pids)
        return pids

    def kill9(self, program: str) -> int:
        """SIGKILL the running `program`; returns the pid killed."""
        pid = self.pid(program)
        assert pid, f"{program} is not running:\n{self.ctl('status')}"
        os.kill(pid, signal.SIGKILL)
        return pid

    @contextlib.contextmanager
    def frozen(self, program: str, withSlots: bool = False) -> Iterator[list[int]]:
        """SIGSTOP `program` and/or (`withSlots`) the scheduler's slot processes, so that
        work piles up in their queues; SIGCONT on leaving. Yields the stopped pids."""
        pids = ([self.pid(program)] if program else []) + (self.slotPids() if withSlots else [])
        assert pids and all(pids), f"nothing to freeze:\n{self.ctl('status')}"
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield pids
        finally:
            for pid in reversed(pids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def logTails(self, lines: int = 25) -> str:
        """Last lines of every service log and of supervisord's log (for failure messages)."""
        parts = []
        for log in [*(self.runDir / f"{p}.log" for p in PROGRAMS),
                    self.runDir / "supervisord.log"]:
            if log.exists():
                tail = log.read_text(errors="replace").splitlines(True)[-lines:]
                parts.append(f"--- {log}\n" + "".join(tail))
        return "\n".join(parts)


# ---------------------------------------------------------------------------- graphite


def sampleValue(metricIndex: int, row: int) -> float:
    """A deterministic, exactly representable test value (a square wave with a ramp)."""
    return float(20 + 10 * metricIndex + 40 * ((row // 6) % 2) + (row % 5))


def graphiteLines(name: str, metricIndex: int, rows: range) -> list[str]:
    """Plaintext lines of rows `rows` (0-based) of metric `name`, 5 minutes apart."""
    return [f"{name} {sampleValue(metricIndex, row)!r} {T0 + 300 * row}\n" for row in rows]


def sendLines(port: int, lines: Sequence[str], chunk: int = 0, pause: float = 0.0) -> None:
    """Send `lines` over one TCP connection (in chunks of `chunk` lines with `pause`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        step = chunk or len(lines) or 1
        for start in range(0, len(lines), step):
            sock.sendall("".join(lines[start:start + step]).encode())
            if pause:
                time.sleep(pause)


def sendConcurrently(port: int, perConnection: Sequence[Sequence[str]], chunk: int = 0,
                     pause: float = 0.0) -> None:
    """One thread and one TCP connection per line list, all at the same time."""
    errors: list[BaseException] = []

    def send(lines: Sequence[str]) -> None:
        try:
            sendLines(port, lines, chunk, pause)
        except BaseException as error:  # reported by the caller
            errors.append(error)

    threads = [threading.Thread(target=send, args=(lines,)) for lines in perConnection]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors


def listenerUp(port: int) -> bool:
    """True if the metric listener accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- results exchange


@dataclass
class PublishedResults:
    """Inference results seen on the results exchange for one metric."""

    firstSeen: dict[int, tuple] = field(default_factory=dict)   # rowid -> values
    order: list[int] = field(default_factory=list)              # rowids in first-seen order
    batches: list[list[int]] = field(default_factory=list)      # first deliveries' rowids
    duplicates: int = 0


class ResultsProbe:
    """A queue bound to the results exchange; collects inference results per metric uid."""

    def __init__(self, bus: Any, exchange: str) -> None:
        self.bus = bus
        self.queue = f"{exchange}.supervised.{uuid.uuid4().hex[:8]}"
        bus.declare_fanout_exchange(exchange, durable=True)
        bus.declare_queue(self.queue, durable=False)
        bus.bind_queue(self.queue, exchange)
        self.byMetric: dict[str, PublishedResults] = {}

    def drain(self) -> None:
        """Read everything queued so far."""
        from htmengine.pipeline.results_serialization import deserializeModelResult

        while (message := self.bus.get(self.queue)) is not None:
            self.bus.ack(message.delivery_tag)
            body = deserializeModelResult(message.body)
            if "results" not in body:
                continue
            seen = self.byMetric.setdefault(body["metric"]["uid"], PublishedResults())
            fresh = []
            for result in body["results"]:
                values = (result["ts"], result["value"], result["rawAnomaly"],
                          result["anomaly"])
                rowid = result["rowid"]
                if rowid in seen.firstSeen:
                    seen.duplicates += 1
                    assert seen.firstSeen[rowid] == values, (
                        f"rowid {rowid} published twice with different values: "
                        f"{seen.firstSeen[rowid]} then {values}")
                else:
                    seen.firstSeen[rowid] = values
                    seen.order.append(rowid)
                    fresh.append(rowid)
            if fresh:
                assert len(fresh) == len(body["results"]), (
                    f"a published batch mixes new and already published rows: {body['results']}")
                seen.batches.append(fresh)

    def close(self) -> None:
        """Delete the probe queue."""
        self.bus.delete_queue(self.queue)


# ---------------------------------------------------------------------------- references


def referenceRawScores(modelConfig: dict[str, Any],
                       rows: Sequence[tuple[datetime, float]]) -> list[float]:
    """Raw anomaly scores of one uninterrupted in-process HtmAnomalyModel over `rows`."""
    from htmengine.algorithms.model import HtmAnomalyModel

    model = HtmAnomalyModel.create(modelConfig)
    return [model.run(timestamp, value) for timestamp, value in rows]


def referenceAnomalyScores(engine: sa.Engine, rows: Sequence[tuple[datetime, float, float]],
                           batchSizes: Sequence[int]) -> list[float]:
    """anomaly_score of `rows` ((timestamp, value, raw score)) as the anomaly service's
    likelihood helper computes them when fed result batches of `batchSizes` rows without any
    interruption; computed on a scratch metric that is deleted afterwards."""
    from htmengine.adapters.datasource import createDatasourceAdapter
    from htmengine.config import app_config
    from htmengine.repository import queries
    from htmengine.runtime.anomaly_likelihood_helper import AnomalyLikelihoodHelper, ScoredRow

    assert sum(batchSizes) == len(rows), (sum(batchSizes), len(rows))
    helper = AnomalyLikelihoodHelper.fromConfig(app_config())
    uid = createDatasourceAdapter("custom", engine=engine).createMetric(
        f"test.supervised.reference.{uuid.uuid4().hex[:12]}")
    try:
        with engine.begin() as conn:
            stored = queries.addMetricData(conn, uid, [(value, ts) for ts, value, _ in rows])
        rowids = [row["rowid"] for row in stored]
        state: dict[str, Any] | None = None
        scores: list[float] = []
        position = 0
        for size in batchSizes:
            batch = [ScoredRow(rowid, ts, value, raw) for rowid, (ts, value, raw)
                     in zip(rowids[position:position + size], rows[position:position + size],
                            strict=True)]
            with engine.begin() as conn:
                state = helper.updateModelAnomalyScores(conn, uid, state, batch)
                for row in batch:
                    queries.updateMetricDataColumns(
                        conn, {"uid": uid, "rowid": row.rowid},
                        {"raw_anomaly_score": row.raw_anomaly_score,
                         "anomaly_score": row.anomaly_score})
            state = json.loads(json.dumps(state))   # as stored in metric.model_params
            scores.extend(row.anomaly_score for row in batch)
            position += size
        return scores
    finally:
        with engine.begin() as conn:
            queries.deleteMetric(conn, uid)
