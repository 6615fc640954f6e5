"""A slot's eviction path (slot_worker._SlotWorker) with the in-memory queue, checkpoint
files and HashModel of test_model_runner: lazy models are dropped without a checkpoint while
their rows are replayable, and checkpointed by the idle sweep once those rows waited longer
than the checkpoint policy's age limit."""

from __future__ import annotations

import os
from multiprocessing import Pipe
from multiprocessing.connection import Connection

from test_model_runner import (
    HashModel,
    ListReplaySource,
    define,
    env,  # noqa: F401  (the fixture)
    loaded,
    reference_model,
    reference_scores,
    rows,
    scores,
)

from htmengine.model_swapper import slot_worker
from htmengine.model_swapper.runner_support import modelLock
from htmengine.model_swapper.settings import SwapperSettings
from htmengine.model_swapper.slot_worker import _SlotWorker


def slot(env, source: ListReplaySource,  # noqa: F811
         maxAgeSeconds: float, clock=lambda: 0.0) -> tuple[_SlotWorker, Connection]:
    """A slot with a budget of 0 bytes (every model is evicted after its run), and the
    scheduler's end of its pipe."""
    swapper, mgr, _ = env
    settings = SwapperSettings(replay_source="metric_data", checkpoint_every_rows=1000,
                               checkpoint_max_age_seconds=maxAgeSeconds)
    scheduler, conn = Pipe()
    worker = _SlotWorker(0, conn, os.getppid(), 0, settings, clock=clock)
    worker._swapper, worker._checkpointMgr, worker._factory = swapper, mgr, HashModel
    worker._policy, worker._replaySource = settings.checkpoint_policy(), source
    return worker, scheduler


def droppedAfterTwoRuns(env, maxAgeSeconds: float,  # noqa: F811
                        now: list[float]
                        ) -> tuple[_SlotWorker, ListReplaySource, Connection]:
    """A slot (clock: now[0]) that ran model m twice, two rows each: the second run dropped it
    without a checkpoint (its checkpoint holds rows 0-1)."""
    swapper, _, _ = env
    source = ListReplaySource()
    worker, pipe = slot(env, source, maxAgeSeconds=maxAgeSeconds, clock=lambda: now[0])
    define(swapper)
    swapper.put("b0", source.store(rows(0, 2)))
    worker._runModel("m")
    swapper.put("b1", source.store(rows(2, 2)))
    worker._runModel("m")
    return worker, source, pipe


def test_a_slot_drops_replayable_models_and_checkpoints_them_when_their_rows_age(
        env) -> None:  # noqa: F811
    swapper, mgr, log = env
    source = ListReplaySource()
    now = [0.0]
    worker, _pipe = slot(env, source, maxAgeSeconds=3600.0, clock=lambda: now[0])
    define(swapper)
    swapper.put("b0", source.store(rows(0, 2)))
    worker._runModel("m")                  # the first checkpoint is written before the ack
    assert worker.drops == 0 and mgr.loadCheckpointAttributes("m")["lastRowId"] == 1
    for i in (2, 3):
        swapper.put(f"b{i}", source.store(rows(i, 1)))
        outcome, detail = worker._runModel("m")
        assert outcome == "drained" and "evicted=1" in detail, detail
    assert worker.drops == 2 and worker.evictions == 3 and len(worker._resident) == 0
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 1     # nothing written
    assert list(worker._dropped) == ["m"]
    source.scored.update(range(3))         # row 3's result is not stored yet (in flight)
    swapper.results.clear()
    checkpoints = worker.checkpoints
    now[0] = 3590.0
    worker._sweep()
    assert list(worker._dropped) == ["m"] and not swapper.results
    now[0] = 3600.0
    worker._sweep()                        # rows waited an hour: load, replay, checkpoint
    assert worker.checkpoints == checkpoints + 1 and not worker._dropped
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 3
    assert loaded(mgr, "m").digest == reference_model(4).digest
    assert not swapper.results     # row 3's result was published when it was run
    assert log[-1].startswith("checkpoint")


def test_a_dropped_model_locked_at_its_sweep_is_checkpointed_by_a_later_one(
        env, monkeypatch) -> None:  # noqa: F811
    swapper, mgr, _ = env
    monkeypatch.setattr(slot_worker, "EVICTION_LOCK_TIMEOUT_SECONDS", 0.05)
    now = [0.0]
    worker, _source, _pipe = droppedAfterTwoRuns(env, 60.0, now)
    assert list(worker._dropped) == ["m"]
    now[0] = 60.0
    with modelLock(mgr.root, "m", 1.0) as locked:   # another process holds the model
        assert locked
        worker._sweep()
    assert list(worker._dropped) == ["m"], "a sweep that could not lock it forgot it"
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 1
    now[0] = 100.0
    worker._sweep()                                  # 40 s after the failed try: too early
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 1
    now[0] = 120.0
    worker._sweep()
    assert not worker._dropped
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 3
    assert loaded(mgr, "m").digest == reference_model(4).digest


def test_the_sweep_leaves_dropped_models_whose_rows_are_recent(env) -> None:  # noqa: F811
    swapper, mgr, _ = env
    now = [0.0]
    worker, source, _pipe = droppedAfterTwoRuns(env, 3600.0, now)
    now[0] = 3599.0
    worker._sweep()
    assert list(worker._dropped) == ["m"] and worker.drops == 1
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 1
    # loaded again and checkpointed by its run (a deleteModel, say): no longer tracked
    swapper.put("b2", source.store(rows(4, 1000)))   # the policy's 1000 rows: due
    worker._runModel("m")
    assert not worker._dropped
    assert loaded(mgr, "m").digest == reference_model(1004).digest
    assert scores(swapper) == reference_scores(1004)


def test_a_dropped_model_does_not_publish_its_results_again_when_loaded(
        env) -> None:  # noqa: F811
    swapper, mgr, _ = env
    source = ListReplaySource()                # no result is stored (the anomaly service
    now = [0.0]                                # is behind), so every row is unscored
    worker, _pipe = slot(env, source, maxAgeSeconds=3600.0, clock=lambda: now[0])
    define(swapper)
    swapper.put("b0", source.store(rows(0, 2)))
    worker._runModel("m")
    for i in range(2, 6):
        swapper.put(f"b{i}", source.store(rows(i, 1)))
        worker._runModel("m")
    assert worker.drops == 4
    published = [r.rowID for _, batch in swapper.results for r in batch
                 if hasattr(r, "anomalyScore")]
    assert published == list(range(6))         # each row's result once, in order
    assert scores(swapper) == reference_scores(6)
    # the slot died (its memory of what was published is gone): a new one republishes
    # the replayed rows whose results are not stored, as after any crash
    other, _otherPipe = slot(env, source, maxAgeSeconds=3600.0, clock=lambda: now[0])
    swapper.results.clear()
    swapper.put("b6", source.store(rows(6, 1)))
    other._runModel("m")
    assert [r.rowID for _, batch in swapper.results for r in batch] == [2, 3, 4, 5, 6]
