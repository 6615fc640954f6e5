"""The real scheduler service (subprocess, real RabbitMQ, real checkpoint files) driving the
tiny deterministic HashModel, so that scheduling, preemption, crash recovery and exactly-once
application are tested quickly and independently of the HTM model's speed. The same
properties with HtmAnomalyModel are in test_model_scheduler_service.py."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import pytest
from swapper_hash_model import HashModel
from swapper_service_helpers import SchedulerProcess, schedulerEnv

from htmengine.model_swapper import errors
from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.messages import ModelCommandResult, ModelInputRow
from htmengine.model_swapper.model_runner import loadCheckpointedModel
from htmengine.model_swapper.model_scheduler_service import defaultNumSlots

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1)


def loaded(mgr: ModelCheckpointMgr, modelID: str) -> HashModel:
    """The model as the checkpoint has it (saved bytes + replayed rows)."""
    return loadCheckpointedModel(mgr, modelID, HashModel)[0]
SCHEMA = [["c0", "datetime", "T"], ["c1", "float", ""]]


def definition(seed: int, delay: float = 0.0) -> dict:
    return {"modelConfig": {"seed": seed, "delay": delay}, "inferenceArgs": {},
            "inputRecordSchema": SCHEMA}


def rows(start: int, count: int) -> list[ModelInputRow]:
    return [ModelInputRow(i, (T0 + timedelta(minutes=5 * i), float((i * 7) % 11)))
            for i in range(start, start + count)]


def reference(seed: int, count: int) -> list[tuple[int, float]]:
    model = HashModel.create({"seed": seed})
    return [(r.rowID, model.run(*r.data)) for r in rows(0, count)]


@pytest.fixture(scope="module")
def scheduler(engine_env, tmp_path_factory):
    proc = SchedulerProcess(schedulerEnv(engine_env, "swapper_hash_model:HashModel",
                                                 requestsPerCheckpoint=50), 2,
                            tmp_path_factory.mktemp("sched") / "scheduler.log")
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.logTail()


def test_fifty_models_on_two_slots_all_progress_each_row_scored_once_in_order(
        scheduler, swapper, collector) -> None:
    models = {uuid.uuid4().hex: seed for seed in range(50)}
    for modelID, seed in models.items():
        swapper.defineModel(modelID, definition(seed), commandID=f"def-{seed}")
    for chunk in range(3):           # interleaved input, so models compete for the slots
        for modelID in models:
            swapper.submitRequests(modelID, rows(4 * chunk, 4))

    def done() -> bool:
        return all(len(collector.byModel[m]) >= 13 for m in models)

    collector.collectUntil(done, timeout=120, describe=scheduler.logTail)
    for modelID, seed in models.items():
        items = collector.byModel[modelID]
        assert items[0] == ModelCommandResult(f"def-{seed}", "defineModel", 0)
        assert collector.rowScores(modelID) == reference(seed, 12)
        assert len(items) == 13


def test_busy_models_are_preempted_so_waiting_models_progress(
        scheduler, swapper, collector) -> None:
    hogs = {uuid.uuid4().hex: seed for seed in (100, 101)}
    small = {uuid.uuid4().hex: seed for seed in (102, 103, 104, 105)}
    for modelID, seed in hogs.items():
        swapper.defineModel(modelID, definition(seed, delay=0.01), "d")
        for start in range(0, 400, 10):
            swapper.submitRequests(modelID, rows(start, 10))
    collector.collectUntil(lambda: all(len(collector.byModel[m]) > 10 for m in hogs),
                           timeout=60)
    for modelID, seed in small.items():       # both slots are busy with the hogs now
        swapper.defineModel(modelID, definition(seed), "d")
        swapper.submitRequests(modelID, rows(0, 2))
    collector.collectUntil(lambda: all(len(collector.byModel[m]) >= 3 for m in small),
                           timeout=60, describe=scheduler.logTail)
    assert all(len(collector.rowScores(m)) < 400 for m in hogs), "no preemption happened"
    collector.collectUntil(lambda: all(len(collector.byModel[m]) >= 401 for m in hogs),
                           timeout=60, describe=scheduler.logTail)
    for modelID, seed in {**hogs, **small}.items():
        count = 400 if modelID in hogs else 2
        assert collector.rowScores(modelID) == reference(seed, count)


def test_redelivered_batch_id_is_not_scored_twice(scheduler, swapper, collector) -> None:
    # opaque string row ids, so only the batch id can reveal the redelivery
    def named(batch: list[ModelInputRow]) -> list[ModelInputRow]:
        return [ModelInputRow(f"row-{r.rowID}", r.data) for r in batch]

    modelID = uuid.uuid4().hex
    swapper.defineModel(modelID, definition(3), "d")
    swapper.submitRequestBatch(modelID, "batch-once", named(rows(0, 5)))
    swapper.submitRequestBatch(modelID, "batch-once", named(rows(0, 5)))  # a redelivery
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 6, timeout=60)
    time.sleep(0.5)                                  # the duplicate was seen by now
    swapper.submitRequestBatch(modelID, "batch-once", named(rows(0, 5)))  # after a checkpoint
    swapper.submitRequests(modelID, named(rows(5, 5)))
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 11, timeout=60)
    time.sleep(0.5)
    collector.collectUntil(lambda: True, timeout=1)
    assert collector.rowScores(modelID) == [(f"row-{i}", score)
                                            for i, score in reference(3, 10)]
    assert loaded(ModelCheckpointMgr(), modelID).count == 10


def _stream_with_crash(scheduler: SchedulerProcess, swapper, collector, crash) -> None:
    modelID = uuid.uuid4().hex
    swapper.defineModel(modelID, definition(11, delay=0.004), "d")
    total = 600
    for start in range(0, total, 10):
        swapper.submitRequests(modelID, rows(start, 10))
    collector.collectUntil(lambda: len(collector.rowScores(modelID)) >= 100, timeout=60)
    crash()
    assert len(collector.rowScores(modelID)) < total, "the crash came after the stream"
    collector.collectUntil(
        lambda: len({r for r, _ in collector.rowScores(modelID)}) >= total, timeout=120,
        describe=scheduler.logTail)
    expected = dict(reference(11, total))
    seen: dict[int, float] = {}
    for rowID, score in collector.rowScores(modelID):
        # a batch whose results were published just before the crash may be published
        # again after it, but only ever with the identical score
        assert seen.setdefault(rowID, score) == score
    assert seen == expected
    # the model applied every row exactly once
    deadline = time.monotonic() + 30
    while loaded(ModelCheckpointMgr(), modelID).count != total:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_kill9_of_the_scheduler_mid_stream_loses_and_repeats_nothing(
        scheduler, swapper, collector) -> None:
    def crash() -> None:
        scheduler.kill9()
        scheduler.start()

    _stream_with_crash(scheduler, swapper, collector, crash)


def test_kill9_of_a_slot_process_mid_stream_loses_and_repeats_nothing(
        scheduler, swapper, collector) -> None:
    def crash() -> None:
        import os
        import signal
        for pid in scheduler.slotPids():
            os.kill(pid, signal.SIGKILL)

    _stream_with_crash(scheduler, swapper, collector, crash)
    assert scheduler.proc is not None and scheduler.proc.poll() is None


def test_commands_end_to_end(scheduler, swapper, collector) -> None:
    modelID, cloneID = uuid.uuid4().hex, uuid.uuid4().hex
    swapper.defineModel(modelID, definition(5), "d1")
    swapper.defineModel(modelID, definition(5), "d2")
    swapper.defineModel(modelID, definition(6), "d3")
    swapper.submitRequests(modelID, rows(0, 2))
    swapper.cloneModel(modelID, cloneID, "c1")
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 6, timeout=60)
    statuses = {i.commandID: i.status for i in collector.byModel[modelID]
                if isinstance(i, ModelCommandResult)}
    assert statuses == {"d1": errors.SUCCESS, "d2": errors.SUCCESS,
                        "d3": errors.ERR_MODEL_ALREADY_EXISTS, "c1": errors.SUCCESS}
    # the clone continues from the source's state
    swapper.submitRequests(cloneID, rows(2, 2))
    collector.collectUntil(lambda: len(collector.byModel[cloneID]) >= 2, timeout=60)
    assert collector.rowScores(cloneID) == reference(5, 4)[2:]
    swapper.deleteModel(modelID, "x1")
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 7, timeout=60)
    assert collector.byModel[modelID][-1] == ModelCommandResult("x1", "deleteModel", 0)
    deadline = time.monotonic() + 10
    while swapper.bus.queue_exists(swapper.getModelInputQueueName(modelID)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not ModelCheckpointMgr().hasModel(modelID)
    assert ModelCheckpointMgr().hasModel(cloneID)
    swapper.deleteModel(modelID, "x2")   # no queue any more: a no-op


def test_monitoring_again_before_the_delete_is_run_keeps_the_new_model(
        scheduler, swapper, collector) -> None:
    """Un-monitor then monitor again (and send rows) before the runner handles the
    deleteModel: the new definition and its rows, queued behind the delete, are run as a new
    model instead of being deleted with the old model's input queue."""
    modelID, mgr = uuid.uuid4().hex, ModelCheckpointMgr()
    swapper.defineModel(modelID, definition(31), "d1")
    swapper.submitRequests(modelID, rows(0, 3))
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 4, timeout=60,
                           describe=scheduler.logTail)
    assert scheduler.stop() == 0        # the commands below queue up before any runner
    swapper.deleteModel(modelID, "x1")
    swapper.defineModel(modelID, definition(32), "d2")
    swapper.submitRequests(modelID, rows(0, 5))
    scheduler.start()
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 11, timeout=60,
                           describe=scheduler.logTail)
    assert collector.byModel[modelID][4:6] == [ModelCommandResult("x1", "deleteModel", 0),
                                               ModelCommandResult("d2", "defineModel", 0)]
    assert collector.rowScores(modelID) == reference(31, 3) + reference(32, 5)
    # the new model's checkpoint holds its own definition and rows only
    deadline = time.monotonic() + 30
    while not (mgr.hasModel(modelID) and mgr.loadCheckpoint(modelID) is not None
               and loaded(mgr, modelID).count == 5):
        assert time.monotonic() < deadline, scheduler.logTail()
        time.sleep(0.1)
    assert mgr.loadModelDefinition(modelID) == definition(32)
    # un-monitoring with nothing behind the delete still removes the queue and checkpoint
    swapper.deleteModel(modelID, "x2")
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 12, timeout=60,
                           describe=scheduler.logTail)
    assert collector.byModel[modelID][-1] == ModelCommandResult("x2", "deleteModel", 0)
    deadline = time.monotonic() + 10
    while swapper.bus.queue_exists(swapper.getModelInputQueueName(modelID)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not mgr.hasModel(modelID)


def test_restart_picks_up_input_that_arrived_while_stopped(scheduler, swapper, collector) -> None:
    withCheckpoint, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    swapper.defineModel(withCheckpoint, definition(21), "d")
    swapper.submitRequests(withCheckpoint, rows(0, 3))
    collector.collectUntil(lambda: len(collector.byModel[withCheckpoint]) >= 4, timeout=60)
    assert scheduler.stop() == 0
    swapper.submitRequests(withCheckpoint, rows(3, 3))
    swapper.defineModel(fresh, definition(22), "d")
    swapper.submitRequests(fresh, rows(0, 3))
    # without notifications, a model already in the checkpoint archive is found by the
    # start-up scan; the fresh one keeps its (unpurged) notification below
    swapper.bus.purge_queue(swapper.schedulerNotificationQueueName)
    swapper.submitRequests(fresh, rows(3, 1))
    scheduler.start()
    collector.collectUntil(lambda: len(collector.byModel[withCheckpoint]) >= 7
                           and len(collector.byModel[fresh]) >= 5, timeout=60,
                           describe=scheduler.logTail)
    assert collector.rowScores(withCheckpoint) == reference(21, 6)
    assert collector.rowScores(fresh) == reference(22, 4)


def test_default_slot_count_follows_the_original_formula() -> None:
    gib = 1 << 30
    assert defaultNumSlots(cpuCount=8, totalMemory=16 * gib) == 7
    assert defaultNumSlots(cpuCount=16, totalMemory=9 * gib) == 4
    assert defaultNumSlots(cpuCount=2, totalMemory=64 * gib) == 2
