"""The anomaly service against the real MariaDB and RabbitMQ: command results, scoring and
storing result batches, likelihood state in model_params, redelivery, the results exchange."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from runtime_test_support import unique_name, wait_for

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.algorithms.anomaly_likelihood import updateAnomalyLikelihoods
from htmengine.model_swapper.messages import ModelCommandResult, ModelInferenceResult
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.metric_streamer import STREAMED_ROWID_KEY
from htmengine.pipeline.results_serialization import deserializeModelResult, epochSeconds
from htmengine.repository import engineFactory, queries
from htmengine.repository.queries import MetricStatus
from htmengine.runtime.anomaly_likelihood_helper import AnomalyLikelihoodHelper, rescaleForDisplay
from htmengine.runtime.anomaly_service import LIKELIHOOD_PARAMS_KEY, AnomalyService
from nta_utils.dead_letter import dead_letter_queue_name

pytestmark = pytest.mark.integration

T0 = datetime(2015, 5, 1)


@pytest.fixture()
def engine(migrated_db) -> sa.Engine:
    return engineFactory()


@pytest.fixture()
def service(engine) -> AnomalyService:
    return AnomalyService(engine, AnomalyLikelihoodHelper())


class _NoSwapper:
    """The adapter only needs defineModel/deleteModel here; the input queue is not read."""

    def __enter__(self):
        self._real = ModelSwapperInterface()
        return self._real

    def __exit__(self, *exc):
        self._real.close()


def _activeMetric(engine, service, numRows: int, seed: int = 5, activate: bool = True) -> str:
    adapter = createDatasourceAdapter("custom", engine=engine, swapperFactory=_NoSwapper,
                                      chunkSize=1440)
    name = unique_name()
    uid = adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                 "modelParams": {"min": 0, "max": 100}})
    rng = random.Random(seed)
    with engine.begin() as conn:
        queries.addMetricData(conn, uid, [(rng.uniform(0, 100), T0 + timedelta(minutes=5 * i))
                                          for i in range(numRows)])
        # these rows stand for rows the model was sent (the results are made up below)
        modelParams = json.loads(queries.getMetric(conn, uid).model_params)
        modelParams[STREAMED_ROWID_KEY] = numRows
        queries.updateMetricColumns(conn, uid, {"model_params": json.dumps(modelParams)})
    if not activate:
        return uid
    service.processBatch(uid, (ModelCommandResult("c1", "defineModel", 0, args={}),))
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE
    return uid


def _results(first: int, last: int, seed: int = 11) -> tuple:
    rng = random.Random(seed * 100003 + first)
    return tuple(ModelInferenceResult(rowid, 0, anomalyScore=rng.choice([0.0, 0.0, 0.05, 0.3, 1.0]))
                 for rowid in range(first, last + 1))


def _dbRows(engine, uid) -> list:
    with engine.connect() as conn:
        return list(queries.getMetricData(conn, uid))


def _modelParams(engine, uid) -> dict:
    with engine.connect() as conn:
        return json.loads(queries.getMetric(conn, uid).model_params)


def test_define_model_result_activates_and_failure_sets_error(engine, service) -> None:
    adapter = createDatasourceAdapter("custom", engine=engine, swapperFactory=_NoSwapper)
    name = unique_name()
    uid = adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                 "modelParams": {"min": 0, "max": 1}})
    [published] = service.processBatch(uid, (ModelCommandResult("c9", "defineModel", 0,
                                                                args={}),))
    assert published.headers == {"dataType": "model-cmd-result"}
    assert published.message["modelInfo"]["metricName"] == name
    assert published.message["modelInfo"]["modelSpec"]["metricSpec"] == {"metric": name}
    assert (published.message["commandId"], published.message["status"]) == ("c9", 0)
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE
    # a failure of a later command puts the model in ERROR with the message
    [failed] = service.processBatch(uid, (ModelCommandResult(
        "c10", "defineModel", 4, errorMessage="2026-01-01T00:00:00Z bad params"),))
    assert "modelInfo" not in failed.message
    with engine.connect() as conn:
        metric = queries.getMetric(conn, uid)
    assert (metric.status, metric.message) == (MetricStatus.ERROR,
                                               "2026-01-01T00:00:00Z bad params")


def test_result_batch_scored_stored_and_state_persisted(engine, service) -> None:
    uid = _activeMetric(engine, service, 300)
    [published] = service.processBatch(uid, _results(1, 150))
    rows = _dbRows(engine, uid)
    scored = rows[:150]
    assert all(r.raw_anomaly_score is not None for r in scored)
    assert all(r.raw_anomaly_score is None for r in rows[150:])
    # below 100 rows with raw scores the anomaly score is 0
    assert all(r.anomaly_score == 0 and r.display_value == 0 for r in scored[:100])
    assert all(0 <= r.anomaly_score <= 1 for r in scored)
    assert any(r.anomaly_score > 0 for r in scored[100:])
    assert all(r.display_value == rescaleForDisplay(r.anomaly_score) for r in scored)
    state = _modelParams(engine, uid)[LIKELIHOOD_PARAMS_KEY]
    assert 100 <= state["last_rowid_for_stats"] <= 150
    assert set(state["params"]) >= {"distribution", "movingAverage", "historicalLikelihoods"}
    # the published message carries exactly the stored values
    assert published.headers is None
    assert published.message["metric"]["uid"] == uid
    with engine.connect() as conn:
        parameters = json.loads(queries.getMetric(conn, uid).parameters)
    assert published.message["metric"]["spec"] == parameters["metricSpec"]
    assert [(m["rowid"], m["ts"], m["value"], m["rawAnomaly"], m["anomaly"])
            for m in published.message["results"]] == [
        (r.rowid, epochSeconds(r.timestamp), r.metric_value, r.raw_anomaly_score,
         r.anomaly_score) for r in scored]


def test_next_batch_continues_from_the_stored_state(engine, service) -> None:
    uid = _activeMetric(engine, service, 200)
    service.processBatch(uid, _results(1, 130))
    state = _modelParams(engine, uid)[LIKELIHOOD_PARAMS_KEY]
    row131 = _dbRows(engine, uid)[130]
    # a freshly started service scores row 131 from the persisted state
    AnomalyService(engine, AnomalyLikelihoodHelper()).processBatch(uid, _results(131, 131))
    (expectedTail,), _, _ = updateAnomalyLikelihoods(
        [(row131.timestamp, row131.metric_value, _results(131, 131)[0].anomalyScore)],
        state["params"])
    assert _dbRows(engine, uid)[130].anomaly_score == pytest.approx(1 - expectedTail)


def test_redelivered_batch_is_not_applied_twice(engine, service) -> None:
    uid = _activeMetric(engine, service, 200)
    [first] = service.processBatch(uid, _results(1, 160))
    before = [tuple(r) for r in _dbRows(engine, uid)]
    paramsBefore = _modelParams(engine, uid)
    # the same batch again, and one with different scores for the same rows
    [again] = service.processBatch(uid, _results(1, 160))
    service.processBatch(uid, _results(1, 160, seed=99))
    assert [tuple(r) for r in _dbRows(engine, uid)] == before
    assert _modelParams(engine, uid) == paramsBefore
    assert again.message["results"] == first.message["results"]
    # a batch overlapping scored and new rows scores only the new ones
    service.processBatch(uid, _results(150, 170))
    after = _dbRows(engine, uid)
    assert [tuple(r) for r in after[:160]] == before[:160]
    assert all(r.raw_anomaly_score is not None for r in after[160:170])


def test_mismatched_or_failed_batches_are_rejected(engine, service) -> None:
    uid = _activeMetric(engine, service, 10)
    assert service.processBatch(uid, _results(5, 12)) == []       # rows 11, 12 do not exist
    gap = _results(1, 3) + _results(5, 5)
    assert service.processBatch(uid, gap) == []                   # rowids not contiguous
    assert all(r.raw_anomaly_score is None for r in _dbRows(engine, uid))
    failed = _results(1, 2) + (ModelInferenceResult(3, 1, errorMessage="model blew up"),)
    assert service.processBatch(uid, failed) == []
    with engine.connect() as conn:
        metric = queries.getMetric(conn, uid)
    assert (metric.status, metric.message) == (MetricStatus.ERROR, "model blew up")
    assert all(r.raw_anomaly_score is None for r in _dbRows(engine, uid))
    # results for a metric that is no longer ACTIVE are dropped
    assert service.processBatch(uid, _results(1, 2)) == []


def test_a_define_result_before_its_request_commits_waits_for_it(engine, service) -> None:
    # defineModelLocked sends the command inside the transaction that sets CREATE_PENDING:
    # a fast runner's result can be processed before that commit
    import threading
    import time

    adapter = createDatasourceAdapter("custom", engine=engine, swapperFactory=_NoSwapper)
    uid = adapter.createMetric(unique_name())
    requester = engine.connect()
    transaction = requester.begin()
    queries.getMetricWithUpdateLock(requester, uid)
    queries.updateMetricColumns(requester, uid, {"status": int(MetricStatus.CREATE_PENDING)})
    published: list = []
    thread = threading.Thread(target=lambda: published.extend(service.processBatch(
        uid, (ModelCommandResult("c1", "defineModel", 0, args={}),))))
    thread.start()
    time.sleep(0.5)
    transaction.commit()
    requester.close()
    thread.join(30)
    assert [m.message["method"] for m in published] == ["defineModel"]
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE


def test_definition_result_and_first_rows_in_one_message_as_in_two(engine, service) -> None:
    # a new model's runner sends its definition's result and its first rows together: the
    # metric becomes ACTIVE and the rows are scored as when they come one after the other
    together = _activeMetric(engine, service, 150, activate=False)
    apart = _activeMetric(engine, service, 150, activate=False)
    with engine.connect() as conn:
        assert queries.getMetric(conn, together).status == MetricStatus.CREATE_PENDING
    define = ModelCommandResult("c1", "defineModel", 0, args={})
    command, scored = service.processBatch(together, (define, *_results(1, 120)))
    [commandApart] = service.processBatch(apart, (define,))
    [scoredApart] = service.processBatch(apart, _results(1, 120))
    with engine.connect() as conn:
        assert queries.getMetric(conn, together).status == MetricStatus.ACTIVE
    assert command.headers == commandApart.headers == {"dataType": "model-cmd-result"}
    assert ({k: v for k, v in command.message.items() if k not in ("modelId", "modelInfo")}
            == {k: v for k, v in commandApart.message.items()
                if k not in ("modelId", "modelInfo")})
    assert command.message["modelInfo"]["modelSpec"]["metricSpec"]["metric"] == (
        scored.message["metric"]["name"])
    assert scored.message["results"] == scoredApart.message["results"]
    assert [tuple(r)[1:] for r in _dbRows(engine, together)] == [
        tuple(r)[1:] for r in _dbRows(engine, apart)]
    assert (_modelParams(engine, together)[LIKELIHOOD_PARAMS_KEY]
            == _modelParams(engine, apart)[LIKELIHOOD_PARAMS_KEY])


def test_definition_result_with_rejected_rows_still_activates(engine, service) -> None:
    uid = _activeMetric(engine, service, 10, activate=False)
    define = ModelCommandResult("c1", "defineModel", 0, args={})
    [command] = service.processBatch(uid, (define, *_results(5, 12)))   # 11, 12 missing
    assert command.message["method"] == "defineModel"
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE
    assert all(r.raw_anomaly_score is None for r in _dbRows(engine, uid))


def test_service_process_publishes_to_the_results_exchange(engine, service, start_service,
                                                           bus) -> None:
    uid = _activeMetric(engine, service, 120)
    exchange = os.environ[
        "_NTA_UTILS_CONFIG__APPLICATION__METRIC_STREAMER__RESULTS_EXCHANGE_NAME"]
    probe = f"{exchange}.probe.{uid[:8]}"
    bus.declare_fanout_exchange(exchange, durable=True)
    bus.declare_queue(probe, durable=False)
    bus.bind_queue(probe, exchange)
    with ModelSwapperInterface() as swapper:
        bus.declare_queue(swapper.resultsQueueName, durable=True)
        bus.purge_queue(swapper.resultsQueueName)
        swapper.submitResults(uid, _results(1, 60))
        swapper.submitResults(uid, _results(61, 120))
    anomaly = start_service("htmengine.runtime.anomaly_service")
    received = []

    def twoMessages() -> bool:
        assert anomaly.process.poll() is None, anomaly.output()
        while (message := bus.get(probe)) is not None:
            bus.ack(message.delivery_tag)
            received.append(deserializeModelResult(message.body))
        return len(received) >= 2

    wait_for(twoMessages, 30, what="two result messages on the exchange")
    assert anomaly.stop() == 0
    rows = _dbRows(engine, uid)
    published = [item for message in received for item in message["results"]]
    assert [(p["rowid"], p["value"], p["rawAnomaly"], p["anomaly"]) for p in published] == [
        (r.rowid, r.metric_value, r.raw_anomaly_score, r.anomaly_score) for r in rows]
    assert any(p["anomaly"] > 0 for p in published)
    bus.delete_queue(probe)


def test_message_breaking_the_schema_is_not_published_but_rows_are_stored(engine,
                                                                          service) -> None:
    with engine.connect() as conn:   # a metric without datasource: "datasource" must be a string
        uid = queries.addMetric(conn, name=unique_name(), status=MetricStatus.ACTIVE,
                                parameters=json.dumps({"metricSpec": {}}),
                                model_params=json.dumps({})).uid
        queries.addMetricData(conn, uid, [(1.0, T0 + timedelta(minutes=5 * i))
                                          for i in range(3)])
    assert service.processBatch(uid, _results(1, 3)) == []
    assert all(r.raw_anomaly_score is not None for r in _dbRows(engine, uid))


def test_poison_result_messages_are_dead_lettered_and_the_rest_flows(engine, service,
                                                                     start_service, bus,
                                                                     engine_env) -> None:
    """An undecodable results message goes to <app>.dlq.<results queue> at once, a batch whose
    processing keeps failing after max_attempts; both logged once; the batch behind them is
    scored; `htmengine dlq` lists them and requeues the repaired one, which is then scored."""
    good = _activeMetric(engine, service, 60)
    bad = _activeMetric(engine, service, 60, seed=6)
    with engine.begin() as conn:              # a likelihood state no code can use
        modelParams = json.loads(queries.getMetric(conn, bad).model_params)
        modelParams[LIKELIHOOD_PARAMS_KEY] = {"last_rowid_for_stats": "x", "params": {}}
        queries.updateMetricColumns(conn, bad, {"model_params": json.dumps(modelParams)})
    poison = b"model\n" + b"[" * 100000 + b"]" * 100000     # RecursionError in json.loads
    with ModelSwapperInterface() as swapper:
        resultsQueue = swapper.resultsQueueName
        dlq = dead_letter_queue_name(resultsQueue)
        for queue in (resultsQueue, dlq):
            bus.declare_queue(queue, durable=True)
            bus.purge_queue(queue)
        bus.publish_to_queue(resultsQueue, poison, persistent=True)
        swapper.submitResults(bad, _results(1, 60))
        swapper.submitResults(good, _results(1, 60))
    anomaly = start_service("htmengine.runtime.anomaly_service")

    def goodScored() -> bool:
        assert anomaly.process.poll() is None, anomaly.output()
        return all(r.raw_anomaly_score is not None for r in _dbRows(engine, good))

    wait_for(goodScored, 60, what="the batch behind the poison messages scored")
    wait_for(lambda: bus.message_count(dlq) == 2, 20, what="two dead letters")
    assert all(r.raw_anomaly_score is None for r in _dbRows(engine, bad))
    logged = [line for line in anomaly.output().splitlines() if "Dead-lettered" in line]
    assert len(logged) == 2, anomaly.output()
    assert all(resultsQueue in line for line in logged)
    assert "after 1 attempt(s): undecodable result message" in logged[0]
    assert "b'model\\n[[[[" in logged[0]
    assert "after 3 attempt(s): processing failed: TypeError" in logged[1]
    assert anomaly.output().count("Traceback") == 0

    htmengine = str(Path(sys.executable).parent / "htmengine")

    def dlqCommand(*args: str) -> str:
        done = subprocess.run([htmengine, "dlq", *args, "--queue", resultsQueue],
                              env=engine_env.subprocess_env(), capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = dlqCommand("list").splitlines()
    assert listed[0] == f"{dlq}: 2 dead letters"
    assert "attempts=1" in listed[1] and "nests JSON arrays/objects deeper" in listed[1]
    assert "attempts=3" in listed[2] and "processing failed: TypeError" in listed[2]
    assert f"from queue: {resultsQueue}" in dlqCommand("show", "2")
    with engine.begin() as conn:              # repair the metric, then requeue its batch
        modelParams = json.loads(queries.getMetric(conn, bad).model_params)
        del modelParams[LIKELIHOOD_PARAMS_KEY]
        queries.updateMetricColumns(conn, bad, {"model_params": json.dumps(modelParams)})
    assert "requeued 1 dead letter" in dlqCommand("requeue", "2")

    def badScored() -> bool:
        assert anomaly.process.poll() is None, anomaly.output()
        return all(r.raw_anomaly_score is not None for r in _dbRows(engine, bad))

    wait_for(badScored, 30, what="the requeued batch scored")
    assert bus.message_count(dlq) == 1
    assert anomaly.stop() == 0
    bus.purge_queue(dlq)


def _dbScores(engine, uid) -> list:
    return [(r.rowid, r.raw_anomaly_score, r.anomaly_score, r.display_value)
            for r in _dbRows(engine, uid)]


def test_a_group_of_batches_equals_the_batches_one_by_one(engine, service) -> None:
    """processGroup applies several models' batches (a define with its first rows, later
    rows of the same model, another model's rows) in one transaction with the same stored
    scores, likelihood states and published messages as processBatch one by one."""
    def scenario(alone: bool) -> tuple[list, list, list]:
        fresh = _activeMetric(engine, service, 40, seed=3, activate=False)
        active = _activeMetric(engine, service, 40, seed=4)
        batches = [(fresh, (ModelCommandResult("c1", "defineModel", 0, args={}),
                            *_results(1, 10))),
                   (active, _results(1, 20)), (fresh, _results(11, 40)),
                   (active, _results(21, 40))]
        if alone:
            published = [service.processBatch(uid, items) for uid, items in batches]
        else:
            published = service.processGroup(batches)
        assert published is not None
        messages = [[(m.headers, {k: v for k, v in m.message.items() if k != "metric"})
                     for m in batch] for batch in published]
        return ([_dbScores(engine, uid) for uid in (fresh, active)],
                [_modelParams(engine, uid)[LIKELIHOOD_PARAMS_KEY] for uid in (fresh, active)],
                messages)

    grouped, alone = scenario(alone=False), scenario(alone=True)
    assert grouped[0] == alone[0] and grouped[1] == alone[1]
    assert len(grouped[2]) == 4 and [len(m) for m in grouped[2]] == [2, 1, 1, 1]
    assert [[h for h, _ in m] for m in grouped[2]] == [[h for h, _ in m] for m in alone[2]]
    assert all(r[1] is not None for r in grouped[0][0] + grouped[0][1])


def test_a_group_with_a_rejected_batch_applies_nothing(engine, service) -> None:
    """A rejected batch (rowids not matching the stored rows) rolls the whole group back:
    processGroup returns None and the caller applies the batches one by one."""
    good = _activeMetric(engine, service, 20)
    bad = _activeMetric(engine, service, 20, seed=6)
    assert service.processGroup([(good, _results(1, 10)), (bad, _results(15, 30))]) is None
    assert all(r.raw_anomaly_score is None for r in _dbRows(engine, good))
    assert service.processBatch(bad, _results(15, 30)) == []
    assert len(service.processBatch(good, _results(1, 10))) == 1
