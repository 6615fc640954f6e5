"""The engine as the README runs it: ``scripts/run-engine.sh start`` (supervisord, the four
services with autorestart) on the session's database, vhost, queues, checkpoint root and
graphite port, with a private run directory; stopped with ``run-engine.sh stop``.

Shown here, end to end:

* graphite lines of several metrics over concurrent TCP connections become contiguous rows;
  after ``monitorMetric`` every row (the backlog too) is scored, the results exchange carries
  the database's values in rowid order, and the scores equal uninterrupted reference runs;
* a metric monitored with too little data is PENDING_DATA, becomes ACTIVE at 288 rows and its
  whole backlog is scored;
* the engine runs with a memory budget that holds two HTM models per slot (4 MB, 2 slots;
  a model of these tests has 0.6-1.0 MB of state) and
  lazy checkpoints (every 50 rows or after 1 s idle), so models are evicted, reloaded and
  replayed from ``metric_data`` all the time: scores still equal uninterrupted runs, and no
  slot ever holds more than its budget;
* ``kill -9`` of the model scheduler, of its slot processes, of the anomaly service and of the
  metric storer in the middle of a stream of six metrics, restarted by supervisord: no row
  lost, none run through the model twice (the checkpointed model has seen exactly one record per row), raw
  scores identical to an uninterrupted in-process model, anomaly scores identical to an
  uninterrupted run of the likelihood helper (row by row: with result batches under 250 rows
  the likelihood does not depend on batch boundaries; larger batches refresh the fit every
  10% of the batch, as the original did, so there only the same batches give the same scores).
"""

from __future__ import annotations

import calendar
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from supervised_support import (
    PROGRAMS,
    ResultsProbe,
    SupervisedEngine,
    graphiteLines,
    listenerUp,
    pidAlive,
    referenceAnomalyScores,
    referenceRawScores,
    sampleValue,
    sendConcurrently,
    waitFor,
)

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams
from htmengine.exceptions import ObjectNotFoundError
from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.model_swapper.runner_support import loadCheckpointedModel
from htmengine.repository import engineFactory, queries
from htmengine.repository.queries import MetricStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Upper bound for the first scores: normally seconds, but the first model run after a change
# of htmengine/algorithms compiles the numba kernels (about 100 s of CPU).
FIRST_SCORES_TIMEOUT = 420
SCORING_TIMEOUT = 240
# Resident models of all slots together: 2 MB per slot, which holds two of this test's HTM
# models (state_nbytes 0.6 MB after 60 rows, 0.9 MB after 200, 1.0 MB after 400), while each
# slot owns three: the six metrics' models are evicted and reloaded over and over.
MEMORY_BUDGET_MB = 4
SLOT_BUDGET_MB = MEMORY_BUDGET_MB / 2
# With result batches of fewer rows than this, the likelihood refresh interval is the fixed
# statistics_refresh_rate (24) and the anomaly scores do not depend on batch boundaries.
BATCH_INDEPENDENT_LIMIT = 240


@pytest.fixture(scope="module")
def supervised(engine_env, migrated_db, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[SupervisedEngine]:
    """The engine under supervisord for this module; always stopped at the end."""
    with ModelSwapperInterface() as swapper:   # models of earlier tests: not our business
        swapper.initSchedulerNotification()
        swapper.bus.purge_queue(swapper.schedulerNotificationQueueName)
    env = engine_env.subprocess_env()
    env.update({
        "HTMENGINE_LOG_LEVEL": "DEBUG",   # the scheduler logs every slot run (read below)
        "_NTA_UTILS_CONFIG__MODEL_SWAPPER__MODEL_SCHEDULER__NUM_SLOTS": "2",
        "_NTA_UTILS_CONFIG__MODEL_SWAPPER__MODEL_SCHEDULER__MEMORY_BUDGET_MB":
            str(MEMORY_BUDGET_MB),
        "_NTA_UTILS_CONFIG__MODEL_SWAPPER__MODEL_RUNNER__CHECKPOINT_EVERY_ROWS": "50",
        "_NTA_UTILS_CONFIG__MODEL_SWAPPER__MODEL_RUNNER__CHECKPOINT_MAX_AGE_SECONDS": "1",
    })
    supervisedEngine = SupervisedEngine(env, tmp_path_factory.mktemp("engine_run"))
    started = supervisedEngine.runScript("start")
    try:
        assert started.returncode == 0, (
            f"run-engine.sh start failed:\n{started.stdout}\n{started.stderr}\n"
            f"{supervisedEngine.logTails()}")
        assert (supervisedEngine.runDir / "supervisor.sock").exists()
        for program in ("model_scheduler", "metric_listener", "metric_storer",
                        "anomaly_service"):
            assert supervisedEngine.pid(program), supervisedEngine.ctl("status")
        waitFor(lambda: listenerUp(engine_env.plaintext_port), 60, what="the metric listener")
        yield supervisedEngine
    finally:
        supervisordPid = supervisedEngine.supervisordPid()
        stopped = supervisedEngine.runScript("stop")
        assert stopped.returncode == 0, f"run-engine.sh stop:\n{stopped.stdout}{stopped.stderr}"
        if supervisordPid is not None:
            assert not pidAlive(supervisordPid), "supervisord still running after stop"
        survivors = [pid for pid in supervisedEngine.seenPids if pidAlive(pid)]
        assert not survivors, f"engine processes still running after stop: {survivors}"


@pytest.fixture()
def probe(engine_env, supervised) -> Iterator[ResultsProbe]:
    """A queue on the results exchange, bound before any sample is sent."""
    from nta_utils.message_bus import MessageBus

    exchange = os.environ[
        "_NTA_UTILS_CONFIG__APPLICATION__METRIC_STREAMER__RESULTS_EXCHANGE_NAME"]
    with MessageBus() as bus:
        resultsProbe = ResultsProbe(bus, exchange)
        try:
            yield resultsProbe
        finally:
            resultsProbe.close()


def _metricUid(engine: sa.Engine, name: str) -> str | None:
    with engine.connect() as conn:
        try:
            return queries.getCustomMetricByName(conn, name).uid
        except ObjectNotFoundError:  # not created yet
            return None


def _storedCount(engine: sa.Engine, uid: str) -> int:
    with engine.connect() as conn:
        return queries.getMetricDataCount(conn, uid)


def _scoredCount(engine: sa.Engine, uid: str, supervised: SupervisedEngine) -> int:
    with engine.connect() as conn:
        metric = queries.getMetric(conn, uid)
        assert metric.status != MetricStatus.ERROR, (
            f"model of {metric.name} failed: {metric.message}\n{supervised.logTails()}")
        return queries.getProcessedMetricDataCount(conn, uid)


def _waitScored(engine: sa.Engine, uids: list[str], count: int, timeout: float,
                supervised: SupervisedEngine) -> None:
    try:
        waitFor(lambda: all(_scoredCount(engine, uid, supervised) >= count for uid in uids),
                timeout, interval=0.5, what=f"{count} scored rows of {len(uids)} metrics")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{supervised.logTails()}") from None


def _waitPublished(probe: ResultsProbe, uids: list[str], numRows: int) -> None:
    def allPublished() -> bool:
        probe.drain()
        return all(uid in probe.byMetric and len(probe.byMetric[uid].firstSeen) == numRows
                   for uid in uids)

    waitFor(allPublished, 60, what="every result on the results exchange")


def _checkMetric(engine: sa.Engine, uid: str, metricIndex: int, numRows: int,
                 probe: ResultsProbe, batchIndependent: bool) -> None:
    """Every claim about one fully scored metric: rows, scores, exchange, checkpoint."""
    with engine.connect() as conn:
        metric = queries.getMetric(conn, uid)
        rows = list(queries.getMetricData(conn, uid))
    assert metric.status == MetricStatus.ACTIVE
    # contiguous rowids, exactly the values sent, in order
    assert [r.rowid for r in rows] == list(range(1, numRows + 1))
    assert [r.metric_value for r in rows] == [sampleValue(metricIndex, n)
                                              for n in range(numRows)]
    assert all(r.raw_anomaly_score is not None and r.anomaly_score is not None for r in rows)

    # raw scores: those of one uninterrupted in-process model with the adapter's modelConfig
    modelConfig = json.loads(metric.model_params)["modelConfig"]
    rawReference = referenceRawScores(modelConfig, [(r.timestamp, r.metric_value)
                                                    for r in rows])
    assert [r.raw_anomaly_score for r in rows] == rawReference

    # the results exchange: every rowid, in rowid order, with the database's values
    published = probe.byMetric.get(uid)
    assert published is not None, "nothing published for the metric"
    assert published.order == list(range(1, numRows + 1))
    assert [published.firstSeen[r.rowid] for r in rows] == [
        (calendar.timegm(r.timestamp.timetuple()), r.metric_value, r.raw_anomaly_score,
         r.anomaly_score) for r in rows]

    # likelihood: the helper fed the same result batches, uninterrupted
    records = [(r.timestamp, r.metric_value, r.raw_anomaly_score) for r in rows]
    batchSizes = [len(batch) for batch in published.batches]
    print(f"metric {metric.name}: result batches {batchSizes}, "
          f"{published.duplicates} results published again")   # shown with -s or on failure
    engineScores = [r.anomaly_score for r in rows]
    assert engineScores == referenceAnomalyScores(engineFactory(), records, batchSizes)
    assert all(score == 0.0 for score in engineScores[:100])
    if batchIndependent:
        # small batches: the same scores as a row-by-row run (batch boundaries do not matter)
        assert max(batchSizes) < BATCH_INDEPENDENT_LIMIT, batchSizes
        assert engineScores == referenceAnomalyScores(engineFactory(), records,
                                                      [1] * numRows)

    # the checkpointed model has run each row exactly once
    def recordsSeen() -> int:
        model, _ = loadCheckpointedModel(ModelCheckpointMgr(), uid)
        return model.records_seen

    waitFor(lambda: recordsSeen() == numRows, 60, interval=0.5,
            what=f"a checkpoint after {numRows} records")
    assert recordsSeen() == numRows


def test_concurrent_graphite_connections_then_monitor(engine_env, supervised, probe) -> None:
    numMetrics, numRows, beforeMonitor = 4, 300, 100
    engine = engineFactory()
    names = [f"test.supervised.multi{i}.{os.urandom(4).hex()}" for i in range(numMetrics)]
    port = engine_env.plaintext_port

    # rows sent before the metrics are monitored: stored, contiguous, not scored
    sendConcurrently(port, [graphiteLines(name, i, range(beforeMonitor))
                            for i, name in enumerate(names)], chunk=25, pause=0.01)
    uids = [waitFor(lambda n=name: _metricUid(engine, n), 60, what=f"metric {name}")
            for name in names]
    waitFor(lambda: all(_storedCount(engine, uid) == beforeMonitor for uid in uids), 60,
            what=f"{beforeMonitor} stored rows per metric")
    with engine.connect() as conn:
        assert all(queries.getMetric(conn, uid).status == MetricStatus.UNMONITORED
                   for uid in uids)
        assert all(queries.getProcessedMetricDataCount(conn, uid) == 0 for uid in uids)

    adapter = createDatasourceAdapter("custom", engine=engine)
    for uid in uids:
        assert adapter.monitorMetric({"datasource": "custom", "metricSpec": {"uid": uid},
                                      "modelParams": {"min": 0, "max": 100}}) == uid
    _waitScored(engine, uids, beforeMonitor, FIRST_SCORES_TIMEOUT, supervised)

    # the rest while the models run
    sendConcurrently(port, [graphiteLines(name, i, range(beforeMonitor, numRows))
                            for i, name in enumerate(names)], chunk=20, pause=0.02)
    _waitScored(engine, uids, numRows, SCORING_TIMEOUT, supervised)
    _waitPublished(probe, uids, numRows)
    for index, uid in enumerate(uids):
        _checkMetric(engine, uid, index, numRows, probe, batchIndependent=True)


def test_pending_data_until_288_rows_then_backlog_scored(engine_env, supervised,
                                                         probe) -> None:
    numRows, early = 400, 200
    engine = engineFactory()
    name = f"test.supervised.pending.{os.urandom(4).hex()}"
    port = engine_env.plaintext_port
    sendConcurrently(port, [graphiteLines(name, 0, range(early))], chunk=50, pause=0.01)
    uid = waitFor(lambda: _metricUid(engine, name), 60, what=f"metric {name}")
    waitFor(lambda: _storedCount(engine, uid) == early, 60, what=f"{early} stored rows")

    adapter = createDatasourceAdapter("custom", engine=engine)
    assert adapter.monitorMetric({"datasource": "custom", "metricSpec": {"uid": uid}}) == uid
    with engine.connect() as conn:
        metric = queries.getMetric(conn, uid)
    assert metric.status == MetricStatus.PENDING_DATA

    # still too little data: stays PENDING_DATA, nothing scored
    sendConcurrently(port, [graphiteLines(name, 0, range(early, 287))], chunk=29, pause=0.01)
    waitFor(lambda: _storedCount(engine, uid) == 287, 60, what="287 stored rows")
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.PENDING_DATA
        assert queries.getProcessedMetricDataCount(conn, uid) == 0

    # the 288th row starts the model (range from the stored data) and its backlog is scored
    sendConcurrently(port, [graphiteLines(name, 0, range(287, 288))])
    _waitScored(engine, [uid], 288, FIRST_SCORES_TIMEOUT, supervised)
    with engine.connect() as conn:
        metric = queries.getMetric(conn, uid)
        assert queries.getProcessedMetricDataCount(conn, uid) == 288
    assert metric.status == MetricStatus.ACTIVE
    values = [sampleValue(0, n) for n in range(288)]
    padding = 0.2 * (max(values) - min(values))
    expected = getScalarMetricWithTimeOfDayAnomalyParams(minVal=min(values) - padding,
                                                         maxVal=max(values) + padding)
    assert json.loads(metric.model_params)["modelConfig"] == expected["modelConfig"]

    sendConcurrently(port, [graphiteLines(name, 0, range(288, numRows))], chunk=20,
                     pause=0.02)
    _waitScored(engine, [uid], numRows, SCORING_TIMEOUT, supervised)
    _waitPublished(probe, [uid], numRows)
    assert probe.byMetric[uid].batches[0] == list(range(1, 289))   # the backlog, one batch
    _checkMetric(engine, uid, 0, numRows, probe, batchIndependent=False)


def _slotRuns(supervised: SupervisedEngine) -> list[dict[str, str]]:
    """The key=value details of every finished slot run in the scheduler's log."""
    log = (supervised.runDir / "model_scheduler.log").read_text(errors="replace")
    return [dict(pair.split("=", 1) for pair in match.group(1).split())
            for match in re.finditer(r"model=\S+ \w+ \((batches=[^)]*)\)", log)]


def _slotEvictions(supervised: SupervisedEngine) -> int:
    """Evictions of every slot process, from the cumulative slotEvictions of the logged runs
    (drained runs are logged only now and then; a slot restarted after a kill counts from 0
    again)."""
    log = (supervised.runDir / "model_scheduler.log").read_text(errors="replace")
    total, last = 0, {}
    for match in re.finditer(r"slot (\d+): model=\S+ \w+ \([^)]*slotEvictions=(\d+)", log):
        slot, count = match.group(1), int(match.group(2))
        previous = last.get(slot, 0)
        total += count - previous if count >= previous else count
        last[slot] = count
    return total


def test_kill9_services_mid_stream_under_supervisord(engine_env, supervised, probe) -> None:
    numMetrics, numRows, warmRows = 6, 400, 60
    engine = engineFactory()
    port = engine_env.plaintext_port
    adapter = createDatasourceAdapter("custom", engine=engine)
    names = [f"test.supervised.crash{i}.{os.urandom(4).hex()}" for i in range(numMetrics)]
    uids = [adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                   "modelParams": {"min": 0, "max": 100}})
            for name in names]
    sendConcurrently(port, [graphiteLines(name, i, range(warmRows))
                            for i, name in enumerate(names)])
    _waitScored(engine, uids, warmRows, FIRST_SCORES_TIMEOUT, supervised)

    def scoredNow() -> int:
        return min(_scoredCount(engine, uid, supervised) for uid in uids)

    def storedNow() -> int:
        return min(_storedCount(engine, uid) for uid in uids)

    def stream(start: int, stop: int, chunk: int = 8, pause: float = 0.15) -> None:
        """Rows [start, stop) of every metric, by default 8 per metric every 0.15 s: one
        listener message, one storer batch and one model input batch per 8 rows."""
        sendConcurrently(port, [graphiteLines(name, i, range(start, stop))
                                for i, name in enumerate(names)], chunk=chunk, pause=pause)

    def whenProgressed(count: Callable[[], int], target: int, what: str) -> None:
        waitFor(lambda: count() >= target, SCORING_TIMEOUT, interval=0.01, what=what)

    def checkpointedThrough(rowid: int) -> bool:
        """True once every model has checkpointed (so sent the results of) rows <= rowid."""
        manager = ModelCheckpointMgr()
        return all((manager.loadCheckpointAttributes(uid).get("lastRowId") or 0) >= rowid
                   for uid in uids)

    # Each service is frozen (SIGSTOP) while rows arrive so that work piles up for it, then
    # thawed and killed with SIGKILL as soon as it has visibly worked through part of it.

    # 1. the model scheduler (its slots die with it) in the middle of a backlog
    with supervised.frozen("model_scheduler", withSlots=True):
        stream(warmRows, 160)
        whenProgressed(storedNow, 160, "rows stored")
    whenProgressed(scoredNow, warmRows + 1, "scoring under way")
    killed = supervised.kill9("model_scheduler")
    supervised.waitRestarted("model_scheduler", killed)
    whenProgressed(scoredNow, 160, "scoring after the scheduler restart")

    # 2. the slot processes (model runners) of the restarted scheduler, mid-backlog
    scheduler = supervised.pid("model_scheduler")
    with supervised.frozen("", withSlots=True) as slots:
        stream(160, 240)
        whenProgressed(storedNow, 240, "rows stored")
    whenProgressed(scoredNow, 161, "scoring under way")
    for slot in slots:
        os.kill(slot, signal.SIGKILL)
    assert supervised.pid("model_scheduler") == scheduler, "a slot death is not fatal"
    waitFor(lambda: [p for p in supervised.slotPids() if p not in slots], 60,
            what="the scheduler to respawn its slots")
    whenProgressed(scoredNow, 240, "scoring after the slots' restart")

    # 3. the anomaly service in the middle of a backlog of results
    with supervised.frozen("anomaly_service"):
        stream(240, 320)
        try:
            waitFor(lambda: checkpointedThrough(320), SCORING_TIMEOUT, interval=0.1,
                    what="the models to run rows up to 320")
        except AssertionError as error:
            manager = ModelCheckpointMgr()
            state = {uid: (manager.loadCheckpointAttributes(uid).get("lastRowId"),
                           _storedCount(engine, uid)) for uid in uids}
            raise AssertionError(f"{error}; (checkpoint lastRowId, stored rows) per model: "
                                 f"{state}\n{supervised.logTails(80)}") from error
    whenProgressed(scoredNow, 241, "scoring under way")
    killed = supervised.kill9("anomaly_service")
    supervised.waitRestarted("anomaly_service", killed)
    whenProgressed(scoredNow, 320, "scoring after the anomaly service restart")

    # 4. the metric storer in the middle of a batch: it has stored (and sent to the model)
    # the samples of the first metric and waits for the row lock of the second, which this
    # test holds; the batch is not acked. After the kill the broker redelivers it: the first
    # metric's samples are rejected as duplicates, the second's are stored and sent.
    first, second = 0, 1
    with supervised.frozen("metric_storer"):
        sendConcurrently(port, [graphiteLines(names[first], first, range(320, numRows))])
        sendConcurrently(port, [graphiteLines(names[i], i, range(320, numRows))
                                for i in range(second, numMetrics)])
        time.sleep(0.5)   # the listener has queued every line
        blocker = engine.connect()
        blockerTx = blocker.begin()
        queries.getMetricWithUpdateLock(blocker, uids[second])
    try:
        whenProgressed(lambda: _storedCount(engine, uids[first]), numRows,
                       "the first metric's samples stored")
        time.sleep(0.5)   # ... and sent to its model; the storer now waits for the lock
        assert _storedCount(engine, uids[second]) == 320
        killed = supervised.kill9("metric_storer")
    finally:
        blockerTx.rollback()
        blocker.close()
    supervised.waitRestarted("metric_storer", killed)

    _waitScored(engine, uids, numRows, SCORING_TIMEOUT, supervised)
    assert scoredNow() == numRows
    _waitPublished(probe, uids, numRows)
    for index, uid in enumerate(uids):
        _checkMetric(engine, uid, index, numRows, probe, batchIndependent=True)
    for program in ("model_scheduler", "metric_listener", "metric_storer", "anomaly_service"):
        assert supervised.pid(program), supervised.ctl("status")

    # far more models than the budget holds: evicted and reloaded, replayed after the kills,
    # reused while resident, and no slot ever over its budget after a run
    runs = _slotRuns(supervised)
    summary = [{k: run[k] for k in ("resident", "replayed", "evicted", "residentModels",
                                    "residentMB")} for run in runs]
    assert _slotEvictions(supervised) >= numMetrics, summary
    assert any(run["resident"] == "True" for run in runs), summary
    assert any(int(run["replayed"]) > 0 for run in runs), summary
    assert max(float(run["residentMB"]) for run in runs) <= SLOT_BUDGET_MB, summary


def test_run_dir_holds_socket_pid_and_supervisord_log(supervised) -> None:
    runDir: Path = supervised.runDir
    assert (runDir / "supervisord.pid").read_text().strip() == str(supervised.supervisordPid())
    log = (runDir / "supervisord.log").read_text()
    assert f"supervisord started with pid {supervised.supervisordPid()}" in log, log
    assert (runDir / "supervisor.sock").is_socket()
    status = supervised.runScript("status")
    assert status.returncode == 0
    assert status.stdout.count(" RUNNING ") == len(PROGRAMS), status.stdout
