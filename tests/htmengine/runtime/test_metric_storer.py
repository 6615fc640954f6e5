"""The metric storer against the real MariaDB and RabbitMQ: lines -> metrics, contiguous rows,
rejections logged with their source, model input streamed (and resumed after a crash)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from runtime_test_support import unique_name, wait_for

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.messages import ModelCommand, ModelCommandResult, ModelInputRow
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.metric_streamer import STREAMED_ROWID_KEY, loadModelParams
from htmengine.pipeline.plaintext import encodeBatchMessage
from htmengine.repository import engineFactory, queries, schema
from htmengine.repository.queries import MetricStatus
from htmengine.runtime.anomaly_likelihood_helper import AnomalyLikelihoodHelper
from htmengine.runtime.anomaly_service import AnomalyService
from htmengine.runtime.metric_storer import REDELIVERED_MARK, MetricStorer

pytestmark = pytest.mark.integration

T0 = 1430000000
EPOCH = datetime(1970, 1, 1)


@pytest.fixture()
def engine(migrated_db) -> sa.Engine:
    return engineFactory()


@pytest.fixture()
def swapper(engine_env):
    with ModelSwapperInterface() as interface:
        yield interface


@pytest.fixture()
def adapter(engine):
    return createDatasourceAdapter("custom", engine=engine, chunkSize=100)


@pytest.fixture()
def storer(engine, swapper, adapter) -> MetricStorer:
    return MetricStorer(engine, swapper, adapter, chunkSize=100, minRowsForModel=288)


def _lines(name: str, values, start: int = 0) -> list[str]:
    return [f"{name} {v} {T0 + 300 * (start + i)}" for i, v in enumerate(values)]


def _message(lines: list[str], source: str = "tcp:10.0.0.1:4000") -> tuple[bytes, str]:
    return encodeBatchMessage(lines, source), "queue message 1"


def _rows(engine: sa.Engine, uid: str) -> list[tuple]:
    with engine.connect() as conn:
        return [(r.rowid, r.timestamp, r.metric_value)
                for r in queries.getMetricData(conn, uid)]


def _metric(engine: sa.Engine, name: str):
    with engine.connect() as conn:
        return queries.getCustomMetricByName(conn, name)


def _drainInput(swapper, modelId: str) -> list[tuple[str, list]]:
    """(batch id, items) of every request batch waiting in the model's input queue."""
    batches = []
    while (batch := swapper.getRequestBatch(modelId)) is not None:
        batch.ack()
        batches.append((batch.batchID, list(batch.objects)))
    return batches


def test_lines_become_metrics_and_contiguous_rows(storer, engine) -> None:
    a, b = unique_name(), unique_name()
    stats = storer.processMessages([
        _message(_lines(a, [1, 2, 3]) + _lines(b, [10, 20])),
        _message(_lines(a, [4, 5], start=3)),
    ])
    assert (stats.storedRows, stats.malformedLines, stats.metrics) == (7, 0, 2)
    metricA = _metric(engine, a)
    assert (metricA.status, metricA.datasource, metricA.server, metricA.description,
            metricA.poll_interval, metricA.last_rowid) == (
        MetricStatus.UNMONITORED, "custom", a, f"Custom metric {a}", 300, 5)
    assert _rows(engine, metricA.uid) == [
        (n + 1, EPOCH + timedelta(seconds=T0 + 300 * n), float(n + 1)) for n in range(5)]
    assert [r[0] for r in _rows(engine, _metric(engine, b).uid)] == [1, 2]


def test_malformed_lines_are_logged_with_source_and_the_rest_kept(storer, engine,
                                                                  caplog) -> None:
    name = unique_name()
    good = _lines(name, [1, 2, 3])
    bad = ["garbage", f"{name} NaN {T0 + 10}", f"{name} abc {T0 + 20}",
           f"{name} 1e999 {T0 + 30}", f"{name} 5 not-a-time", f"{name} 5 {T0} extra"]
    caplog.set_level(logging.WARNING, logger="htmengine.runtime.metric_storer")
    stats = storer.processMessages([
        _message([good[0], *bad, good[1], good[2]], source="tcp:10.9.8.7:1234"),
        (b"not json at all", "queue message 77"),
    ])
    assert (stats.storedRows, stats.malformedLines) == (3, len(bad))
    assert [r[2] for r in _rows(engine, _metric(engine, name).uid)] == [1.0, 2.0, 3.0]
    skipped = [r.getMessage() for r in caplog.records if "Skipping malformed" in r.getMessage()]
    assert len(skipped) == len(bad)
    assert all("tcp:10.9.8.7:1234" in text for text in skipped)
    # the undecodable message is left to the caller, which dead-letters it (and logs it once)
    assert [index for index, _reason in stats.undecodable] == [1]
    assert "is not JSON" in stats.undecodable[0][1]


def test_out_of_order_and_duplicate_timestamps_rejected(storer, engine, caplog) -> None:
    name = unique_name()
    caplog.set_level(logging.WARNING, logger="htmengine.pipeline.metric_streamer")
    storer.processMessages([_message(_lines(name, [1, 2, 3]))])
    lines = [f"{name} 9 {T0 + 300}",          # older than the stored tail
             f"{name} 8 {T0 + 600}",          # duplicate of the stored tail
             f"{name} 4 {T0 + 900}",          # new
             f"{name} 7 {T0 + 900}",          # duplicate within the batch
             f"{name} 5 {T0 + 1200}"]         # new
    stats = storer.processMessages([_message(lines, source="tcp:10.1.1.1:99")])
    assert (stats.storedRows, stats.rejectedSamples) == (2, 3)
    rows = _rows(engine, _metric(engine, name).uid)
    assert [(r[0], r[2]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0)]
    rejections = [r for r in caplog.records if "Rejected" in r.getMessage()]
    assert len(rejections) == 3
    assert all("tcp:10.1.1.1:99" in r.getMessage() and r.levelno == logging.WARNING
               for r in rejections)


def test_redelivered_samples_already_stored_are_rejected_quietly(storer, engine,
                                                                 caplog) -> None:
    name = unique_name()
    caplog.set_level(logging.INFO, logger="htmengine.pipeline.metric_streamer")
    body = _message(_lines(name, [1, 2, 3]))[0]
    storer.processMessages([(body, "queue message 7")])
    stats = storer.processMessages([(body, "queue message 1" + REDELIVERED_MARK)])
    assert (stats.storedRows, stats.rejectedSamples) == (0, 3)
    rejections = [r for r in caplog.records if "Rejected" in r.getMessage()]
    assert len(rejections) == 3
    assert all(r.levelno == logging.INFO and "(redelivered)" in r.getMessage()
               for r in rejections)


def test_redelivered_batch_stores_nothing_twice(storer, engine) -> None:
    name = unique_name()
    batch = [_message(_lines(name, [1, 2, 3, 4]))]
    storer.processMessages(batch)
    again = storer.processMessages(batch)
    assert (again.storedRows, again.rejectedSamples) == (0, 4)
    assert len(_rows(engine, _metric(engine, name).uid)) == 4


def test_active_metric_rows_streamed_in_chunks_once(storer, engine, adapter, swapper) -> None:
    name = unique_name()
    uid = adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                 "modelParams": {"min": 0, "max": 500}})
    assert _metric(engine, name).status == MetricStatus.CREATE_PENDING
    define = _drainInput(swapper, uid)
    assert [type(item) for _, items in define for item in items] == [ModelCommand]
    storer.processMessages([_message(_lines(name, range(250)))])
    batches = _drainInput(swapper, uid)
    rowids = [item.rowID for _, items in batches for item in items]
    assert rowids == list(range(1, 251))
    assert [len(items) for _, items in batches] == [100, 100, 50]   # chunk_size 100
    assert [batchId for batchId, _ in batches] == [
        f"{uid}-1-100", f"{uid}-101-200", f"{uid}-201-250"]
    first = batches[0][1][0]
    assert isinstance(first, ModelInputRow)
    assert list(first.data) == [EPOCH + timedelta(seconds=T0), 0.0]
    metric = _metric(engine, name)
    assert loadModelParams(metric.model_params)[STREAMED_ROWID_KEY] == 250
    storer.processMessages([_message(_lines(name, [7], start=250))])
    assert [[i.rowID for i in items] for _, items in _drainInput(swapper, uid)] == [[251]]


def test_rows_committed_but_not_sent_are_resumed_after_a_crash(storer, engine, adapter,
                                                               swapper) -> None:
    name = unique_name()
    uid = adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                 "modelParams": {"min": 0, "max": 10}})
    _drainInput(swapper, uid)
    storer.processMessages([_message(_lines(name, [1, 2]))])
    _drainInput(swapper, uid)
    # Crash between the commit of the samples and sending them: store only.
    stored = storer.streamer.storeSamples(
        uid, [(EPOCH + timedelta(seconds=T0 + 300 * (2 + n)), float(n)) for n in range(3)])
    assert [r.rowid for r in stored.rows] == [3, 4, 5]
    assert _drainInput(swapper, uid) == []
    # The broker redelivers the batch: its samples are duplicates now, nothing new is stored.
    redelivered = storer.processMessages([_message(_lines(name, [0, 1, 2], start=2))])
    assert redelivered.storedRows == 0
    # A restarted storer resumes from the durable mark: rows 3..5 go to the model once.
    restarted = MetricStorer(engine, swapper, adapter, chunkSize=100)
    assert restarted.streamer.resumeStreaming() >= 3
    assert [[i.rowID for i in items] for _, items in _drainInput(swapper, uid)] == [[3, 4, 5]]
    assert restarted.streamer.resumeStreaming() == 0
    assert _drainInput(swapper, uid) == []


def test_pending_data_metric_becomes_active_at_288_rows(storer, engine, adapter,
                                                        swapper) -> None:
    name = unique_name()
    uid = adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name}})
    assert _metric(engine, name).status == MetricStatus.PENDING_DATA
    storer.processMessages([_message(_lines(name, range(287)))])
    assert _metric(engine, name).status == MetricStatus.PENDING_DATA
    assert not swapper.modelInputPending(uid)
    storer.processMessages([_message(_lines(name, [1000], start=287))])
    metric = _metric(engine, name)
    assert metric.status == MetricStatus.CREATE_PENDING
    batches = _drainInput(swapper, uid)
    command = batches[0][1][0]
    assert isinstance(command, ModelCommand) and command.method == "defineModel"
    # encoder range from the data (0 .. 1000) widened by 20% of the range at both ends
    encoder = command.args["modelConfig"]["modelParams"]["sensorParams"]["encoders"]["c1"]
    assert encoder["resolution"] == pytest.approx(max(0.001, 1400.0 / 130))
    assert [i.rowID for _, items in batches[1:] for i in items] == list(range(1, 289))
    assert json.loads(metric.model_params)["modelConfig"] == command.args["modelConfig"]
    # the swapper's success result for that defineModel makes the metric ACTIVE
    AnomalyService(engine, AnomalyLikelihoodHelper()).processBatch(
        uid, (ModelCommandResult(command.commandID, "defineModel", 0, args={}),))
    assert _metric(engine, name).status == MetricStatus.ACTIVE


def test_samples_of_a_metric_in_error_are_dropped(storer, engine, adapter) -> None:
    name = unique_name()
    uid = adapter.createMetric(name)
    with engine.connect() as conn:
        queries.setMetricStatus(conn, uid, MetricStatus.ERROR, "broken model")
    stats = storer.processMessages([_message(_lines(name, [1, 2]))])
    assert stats.storedRows == 0
    assert _rows(engine, uid) == []


def test_storer_service_consumes_the_queue(start_service, custom_queue, bus, engine) -> None:
    name = unique_name()
    for start in (0, 3):
        bus.publish_to_queue(custom_queue, encodeBatchMessage(_lines(name, [1, 2, 3], start)))
    service = start_service("htmengine.runtime.metric_storer")

    def stored() -> bool:
        assert service.process.poll() is None, service.output()
        with engine.connect() as conn:
            row = conn.execute(sa.select(schema.metric.c.last_rowid)
                               .where(schema.metric.c.name == name)).first()
        return row is not None and row.last_rowid == 6

    wait_for(stored, 30, what="the storer to store 6 rows")
    wait_for(lambda: bus.message_count(custom_queue) == 0, 10, what="acks")
    assert service.stop() == 0
    assert bus.message_count(custom_queue) == 0


@pytest.mark.parametrize("storeGroup,streamGroup", [(200, 50), (2, 1)])
def test_a_batch_of_several_metrics_is_stored_and_streamed_together(
        storer, engine, adapter, swapper, monkeypatch, storeGroup, streamGroup) -> None:
    from htmengine.runtime import metric_storer

    monkeypatch.setattr(metric_storer, "STORE_GROUP_METRICS", storeGroup)
    monkeypatch.setattr(metric_storer, "STREAM_GROUP_METRICS", streamGroup)
    active = [unique_name() for _ in range(3)]
    uids = [adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                   "modelParams": {"min": 0, "max": 10}}) for name in active]
    for uid in uids:
        _drainInput(swapper, uid)
    pending = unique_name()
    pendingUid = adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": pending}})
    broken = unique_name()
    brokenUid = adapter.createMetric(broken)
    with engine.connect() as conn:
        queries.setMetricStatus(conn, brokenUid, MetricStatus.ERROR, "broken model")
    plain = unique_name()
    lines = [line for n in range(2) for name in [*active, pending, broken, plain]
             for line in _lines(name, [n + 1], start=n)]
    stats = storer.processMessages([_message(lines)])
    assert (stats.metrics, stats.storedRows, stats.streamedRows) == (6, 10, 6)
    for name, uid in zip(active, uids, strict=True):
        assert [r[0] for r in _rows(engine, uid)] == [1, 2]
        assert [(batchId, [(i.rowID, list(i.data)) for i in items])
                for batchId, items in _drainInput(swapper, uid)] == [
            (f"{uid}-1-2", [(1, [EPOCH + timedelta(seconds=T0), 1.0]),
                            (2, [EPOCH + timedelta(seconds=T0 + 300), 2.0])])]
        assert loadModelParams(_metric(engine, name).model_params)[STREAMED_ROWID_KEY] == 2
    assert [r[0] for r in _rows(engine, pendingUid)] == [1, 2]
    assert not swapper.modelInputPending(pendingUid)
    assert _rows(engine, brokenUid) == []
    assert [r[0] for r in _rows(engine, _metric(engine, plain).uid)] == [1, 2]


def test_a_model_without_input_queue_keeps_its_mark_in_a_batched_stream(
        storer, engine, adapter, swapper) -> None:
    names = [unique_name() for _ in range(3)]
    uids = [adapter.monitorMetric({"datasource": "custom", "metricSpec": {"metric": name},
                                   "modelParams": {"min": 0, "max": 300}}) for name in names]
    for uid in uids:
        _drainInput(swapper, uid)
    swapper.bus.delete_queue(swapper.getModelInputQueueName(uids[1]))   # deleted meanwhile
    lines = [line for name in names for line in _lines(name, range(150))]
    stats = storer.processMessages([_message(lines)])
    assert (stats.storedRows, stats.streamedRows) == (450, 300)
    for name, uid in zip(names, uids, strict=True):
        marks = loadModelParams(_metric(engine, name).model_params).get(STREAMED_ROWID_KEY, 0)
        if uid == uids[1]:
            assert marks == 0
            assert not swapper.bus.queue_exists(swapper.getModelInputQueueName(uid))
        else:
            assert marks == 150
            assert [batchId for batchId, _ in _drainInput(swapper, uid)] == [
                f"{uid}-1-100", f"{uid}-101-150"]
    swapper.bus.declare_queue(swapper.getModelInputQueueName(uids[1]))
    assert storer.streamer.resumeStreaming() == 150
    assert [batchId for batchId, _ in _drainInput(swapper, uids[1])] == [
        f"{uids[1]}-1-100", f"{uids[1]}-101-150"]


def test_store_together_is_all_or_nothing(storer, engine) -> None:
    from htmengine.exceptions import InvalidInputError
    from htmengine.pipeline.metric_streamer import SampleGroup

    name = unique_name()
    storer.processMessages([_message(_lines(name, [1]))])
    uid = _metric(engine, name).uid
    sample = [(EPOCH + timedelta(seconds=T0 + 300), 2.0)]
    other = unique_name()
    storer.processMessages([_message(_lines(other, [1]))])
    otherUid = _metric(engine, other).uid
    malformed = [(EPOCH + timedelta(seconds=T0 + 300), "not a number")]
    with pytest.raises(InvalidInputError):
        storer.streamer.storeSamplesMany([SampleGroup(uid, sample),
                                          SampleGroup(otherUid, malformed)])
    assert [r[0] for r in _rows(engine, uid)] == [1]
    # a missing metric is skipped (None), for the caller to store alone
    assert [r is None for r in storer.streamer.storeSamplesMany(
        [SampleGroup(uid, sample), SampleGroup("no-such-metric-uid", sample)])] == [False, True]
    assert [r[0] for r in _rows(engine, uid)] == [1, 2]


def test_a_metric_locked_elsewhere_does_not_hold_up_the_others(storer, engine) -> None:
    import threading

    free, held = unique_name(), unique_name()
    storer.processMessages([_message(_lines(free, [1]) + _lines(held, [1]))])
    blocker = engine.connect()
    blockerTx = blocker.begin()
    queries.getMetricWithUpdateLock(blocker, _metric(engine, held).uid)
    thread = threading.Thread(target=storer.processMessages, args=(
        [_message(_lines(free, [2], start=1) + _lines(held, [2], start=1))],))
    thread.start()
    try:
        wait_for(lambda: len(_rows(engine, _metric(engine, free).uid)) == 2, 20,
                 what="the free metric's row, while the other one is locked")
        assert len(_rows(engine, _metric(engine, held).uid)) == 1
    finally:
        blockerTx.rollback()
        blocker.close()
    thread.join(30)
    assert [r[2] for r in _rows(engine, _metric(engine, held).uid)] == [1.0, 2.0]


def test_a_metric_deleted_since_its_uid_was_cached_is_created_again(storer, engine,
                                                                    adapter) -> None:
    # the batch's metrics are stored together; the stale uid fails that transaction, and
    # the batch is then stored metric by metric, the deleted one under a new uid
    gone, kept = unique_name(), unique_name()
    storer.processMessages([_message(_lines(gone, [1]) + _lines(kept, [1]))])
    oldUid = _metric(engine, gone).uid
    adapter.deleteMetricByName(gone)
    stats = storer.processMessages([_message(_lines(gone, [5], start=1)
                                             + _lines(kept, [2], start=1))])
    assert (stats.storedRows, stats.failedMetrics) == (2, [])
    newUid = _metric(engine, gone).uid
    assert newUid != oldUid
    assert [r[2] for r in _rows(engine, newUid)] == [5.0]
    assert [r[2] for r in _rows(engine, _metric(engine, kept).uid)] == [1.0, 2.0]
