"""End to end with the real HTM model: the scheduler service (subprocess) runs
HtmAnomalyModel over RabbitMQ input queues; every row gets exactly one result, in order, with
the score an uninterrupted in-process run of the same model gives — also across preemptions
(more models than slots), a redelivered batch, and a kill -9 of the scheduler mid-stream."""

from __future__ import annotations

import math
import time
import uuid
from datetime import datetime, timedelta

import pytest
from swapper_service_helpers import SchedulerProcess, schedulerEnv

from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.messages import ModelCommandResult, ModelInputRow
from htmengine.model_swapper.runner_support import loadCheckpointedModel

model_module = pytest.importorskip("htmengine.algorithms.model")
params_module = pytest.importorskip("htmengine.algorithms.model_params")
HtmAnomalyModel = model_module.HtmAnomalyModel

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 3, 8, 0)
# the first model run of a fresh checkout compiles the numba kernels; allow for it
FIRST_RESULT_TIMEOUT = 600


def model_args(minVal: float, maxVal: float) -> dict:
    return params_module.getScalarMetricWithTimeOfDayAnomalyParams(
        metricData=None, minVal=minVal, maxVal=maxVal)


def stream(start: int, count: int, phase: float = 0.0) -> list[ModelInputRow]:
    return [ModelInputRow(i, (T0 + timedelta(minutes=5 * i),
                              round(50 + 40 * math.sin(i / 6.0 + phase), 3)))
            for i in range(start, start + count)]


def uninterrupted(args: dict, rows: list[ModelInputRow]) -> list[tuple[int, float]]:
    model = HtmAnomalyModel.create(args["modelConfig"])
    return [(r.rowID, model.run(*r.data)) for r in rows]


@pytest.fixture(scope="module")
def scheduler(engine_env, tmp_path_factory):
    proc = SchedulerProcess(schedulerEnv(engine_env, None, requestsPerCheckpoint=40), 2,
                            tmp_path_factory.mktemp("sched-htm") / "scheduler.log")
    proc.start()
    yield proc
    code = proc.stop()
    assert code == 0, proc.logTail()


def test_six_models_on_two_slots_each_row_scored_once_in_order_identically(
        scheduler, swapper, collector) -> None:
    models = {uuid.uuid4().hex: (i, model_args(0, 100 + 10 * i)) for i in range(6)}
    for modelID, (i, args) in models.items():
        swapper.defineModel(modelID, args, commandID=f"def-{i}")
    for chunk in range(3):
        # chunk by chunk: models leave their slots in between, and come back from their
        # checkpoints (full or incremental) or a slot's model cache
        for modelID, (i, _) in models.items():
            swapper.submitRequests(modelID, stream(20 * chunk, 20, phase=i))
        collector.collectUntil(
            lambda chunk=chunk: all(len(collector.byModel[m]) >= 21 + 20 * chunk
                                    for m in models),
            timeout=FIRST_RESULT_TIMEOUT, describe=scheduler.logTail)
    for modelID, (i, args) in models.items():
        items = collector.byModel[modelID]
        assert items[0] == ModelCommandResult(f"def-{i}", "defineModel", 0)
        assert len(items) == 61
        assert collector.rowScores(modelID) == uninterrupted(args, stream(0, 60, phase=i))


def test_redelivered_batch_is_not_scored_twice(scheduler, swapper, collector) -> None:
    modelID, args = uuid.uuid4().hex, model_args(0, 100)
    swapper.defineModel(modelID, args, "d")
    swapper.submitRequestBatch(modelID, "same-batch", stream(0, 10))
    swapper.submitRequestBatch(modelID, "same-batch", stream(0, 10))
    swapper.submitRequests(modelID, stream(10, 10))
    collector.collectUntil(lambda: len(collector.byModel[modelID]) >= 21,
                           timeout=FIRST_RESULT_TIMEOUT, describe=scheduler.logTail)
    time.sleep(1.0)
    collector.collectUntil(lambda: True, timeout=1)
    assert collector.rowScores(modelID) == uninterrupted(args, stream(0, 20))


def test_kill9_mid_stream_then_restart_scores_every_row_once_identically(
        scheduler, swapper, collector) -> None:
    modelID, args = uuid.uuid4().hex, model_args(0, 100)
    rows = stream(0, 400, phase=0.5)
    swapper.defineModel(modelID, args, "d")
    for start in range(0, len(rows), 10):
        swapper.submitRequests(modelID, rows[start:start + 10])
    collector.collectUntil(lambda: len(collector.rowScores(modelID)) >= 80,
                           timeout=FIRST_RESULT_TIMEOUT, describe=scheduler.logTail)
    scheduler.kill9()
    scoredBeforeKill = {r for r, _ in collector.rowScores(modelID)}
    assert len(scoredBeforeKill) < len(rows), "the kill came after the stream ended"
    scheduler.start()
    collector.collectUntil(
        lambda: len({r for r, _ in collector.rowScores(modelID)}) >= len(rows),
        timeout=FIRST_RESULT_TIMEOUT, describe=scheduler.logTail)
    expected = dict(uninterrupted(args, rows))
    seen: dict[int, float] = {}
    for rowID, score in collector.rowScores(modelID):
        # results published just before the kill may be published again, identically
        assert seen.setdefault(rowID, score) == score, rowID
    assert seen == expected
    deadline = time.monotonic() + 60
    while True:   # the checkpointed model has applied every row exactly once
        model, _ = loadCheckpointedModel(ModelCheckpointMgr(), modelID)   # bytes + replay rows
        if model.records_seen == len(rows) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert model.records_seen == len(rows)
