"""ModelRunner logic with an in-memory queue and a tiny deterministic model (the RabbitMQ and
HtmAnomalyModel versions of these properties are in test_model_scheduler_service.py)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from swapper_hash_model import HashModel

from htmengine.model_swapper import errors
from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.checkpoint_policy import CheckpointPolicy
from htmengine.model_swapper.errors import ModelNotFound
from htmengine.model_swapper.messages import (
    ModelCommand,
    ModelCommandResult,
    ModelInferenceResult,
    ModelInputRow,
)
from htmengine.model_swapper.model_runner import (
    MAX_INCREMENTAL_CHECKPOINT_ROWS,
    ModelRunner,
    RunOutcome,
    loadCheckpointedModel,
)
from htmengine.model_swapper.model_swapper_interface import ConsumedRequestBatch
from htmengine.model_swapper.replay_source import ReplayRow
from htmengine.model_swapper.runner_support import TemplateModelFactory

T0 = datetime(2024, 1, 1)


def loaded(mgr: ModelCheckpointMgr, modelID: str) -> HashModel:
    """The model as the checkpoint has it (saved bytes + replayed rows)."""
    return loadCheckpointedModel(mgr, modelID, HashModel)[0]
DEFINITION = {"modelConfig": {"seed": 7}, "inferenceArgs": {},
              "inputRecordSchema": [["c0", "datetime", "T"], ["c1", "float", ""]]}


class FakeBus:
    connection_generation = 1


class FakeSwapper:
    """A model input queue with RabbitMQ's get/ack semantics (unacked messages come back,
    in order, when the consumer 'crashes') and a results list."""

    def __init__(self, log: list[str]) -> None:
        self.bus = FakeBus()
        self.queue: list[tuple[str, tuple]] = []
        self.unacked: list[tuple[int, str, tuple]] = []
        self.results: list[tuple[str, list]] = []
        self.deletedQueues: list[str] = []
        self.log = log
        self.resultsAt: list[int] = []
        self._tag = 0
        self.gets = 0
        self.reportsRemaining = True   # as MessageBus.get does (basic.get-ok's message-count)

    def put(self, batchID: str, items: list) -> None:
        self.queue.append((batchID, tuple(items)))

    def getRequestBatch(self, modelID: str) -> ConsumedRequestBatch | None:
        self.gets += 1
        if modelID in self.deletedQueues:
            raise ModelNotFound(modelID)
        if not self.queue:
            return None
        batchID, items = self.queue.pop(0)
        self._tag += 1
        tag = self._tag
        self.unacked.append((tag, batchID, items))
        return ConsumedRequestBatch(batchID, items, lambda multiple=False: self._ack(tag, multiple),
                                    tag, 1, len(self.queue) if self.reportsRemaining else None)

    def _ack(self, tag: int, multiple: bool) -> None:
        self.log.append(f"ack {tag}{' multiple' if multiple else ''}")
        self.unacked = [u for u in self.unacked if (u[0] > tag if multiple else u[0] != tag)]

    def crash(self) -> None:
        """The consumer died: unacked batches return to the head of the queue."""
        self.queue[:0] = [(b, items) for _, b, items in self.unacked]
        self.unacked = []

    def submitResults(self, modelID: str, results: list) -> None:
        self.results.append((modelID, results))
        self.resultsAt.append(len(self.log))   # log entries (checkpoints, acks) before it

    def cleanUpAfterModelDeletion(self, modelID: str) -> bool:
        if self.queue:            # like RabbitMQ's queue.delete if-empty (ready messages)
            return False
        self.deletedQueues.append(modelID)
        return True


class LoggingMgr(ModelCheckpointMgr):
    def __init__(self, root: Path, log: list[str]) -> None:
        super().__init__(root)
        self.log = log
        self.failNextSave = False

    def save(self, modelID: str, modelState: bytes, attributes: dict[str, Any]) -> int:
        if self.failNextSave:
            self.failNextSave = False
            raise OSError("disk gone")
        generation = super().save(modelID, modelState, attributes)
        self.log.append(f"checkpoint {attributes['batchIds']}")
        return generation


@pytest.fixture()
def env(tmp_path: Path):
    log: list[str] = []
    swapper = FakeSwapper(log)
    mgr = LoggingMgr(tmp_path / "ckpt", log)
    return swapper, mgr, log


def runner(swapper, mgr, target: int = 500, stop=lambda: False) -> ModelRunner:
    return ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=target,
                       stopRequested=stop, modelFactory=HashModel)


def rows(start: int, count: int) -> list[ModelInputRow]:
    return [ModelInputRow(i, (T0 + timedelta(minutes=5 * i), float(i % 7)))
            for i in range(start, start + count)]


def scores(swapper: FakeSwapper) -> dict[int, float]:
    out: dict[int, float] = {}
    for _, results in swapper.results:
        for r in results:
            if isinstance(r, ModelInferenceResult):
                assert r.status == 0, r.errorMessage
                out.setdefault(r.rowID, r.anomalyScore)
                assert out[r.rowID] == r.anomalyScore
    return out


def reference_model(count: int) -> HashModel:
    model = HashModel.create(DEFINITION["modelConfig"])
    for r in rows(0, count):
        model.run(*r.data)
    return model


def reference_scores(count: int) -> dict[int, float]:
    model = HashModel.create(DEFINITION["modelConfig"])
    return {r.rowID: model.run(*r.data) for r in rows(0, count)}


def define(swapper: FakeSwapper, definition=DEFINITION, batchID="def") -> None:
    swapper.put(batchID, [ModelCommand("c-def", "defineModel", definition)])


def test_rows_scored_in_order_checkpoint_before_ack_one_result_message_per_checkpoint(
        env) -> None:
    swapper, mgr, log = env
    define(swapper)
    swapper.put("b1", rows(0, 3))
    swapper.put("b2", rows(3, 2))
    stats = runner(swapper, mgr, target=4).run()
    assert stats.outcome is RunOutcome.DRAINED
    # the definition's result and b1's rows in one message, published before the
    # checkpoint that contains them; b2's before its own
    assert [[getattr(r, "rowID", "define") for r in results]
            for _, results in swapper.results] == [["define", 0, 1, 2], [3, 4]]
    assert scores(swapper) == reference_scores(5)
    # after 4 requests (define + b1): checkpoint, then ack; then b2 at the idle point
    assert log == ["checkpoint ['def', 'b1']", "ack 2 multiple",
                   "checkpoint ['b2']", "ack 3 multiple"]
    assert swapper.resultsAt == [0, 2]
    assert swapper.unacked == [] and swapper.queue == []
    assert loaded(mgr, "m").count == 5


def string_id_rows(start: int, count: int) -> list[ModelInputRow]:
    """rows() with opaque string row ids: only the batch-id check can catch a redelivery."""
    return [ModelInputRow(f"row-{r.rowID}", r.data) for r in rows(start, count)]


def test_redelivered_batch_already_in_checkpoint_is_not_scored_twice(env) -> None:
    swapper, mgr, log = env
    define(swapper)
    swapper.put("b1", string_id_rows(0, 4))
    runner(swapper, mgr).run()
    # the ack was lost: the broker delivers b1 again (same batch id), then new rows
    swapper.put("b1", string_id_rows(0, 4))
    swapper.put("b2", string_id_rows(4, 3))
    stats = runner(swapper, mgr).run()
    assert (stats.duplicateBatches, stats.duplicateRows) == (1, 0)
    resultIds = [r.rowID for _, results in swapper.results for r in results
                 if isinstance(r, ModelInferenceResult)]
    assert resultIds == [f"row-{i}" for i in range(7)]
    assert loaded(mgr, "m").count == 7
    # ids of the run before the last checkpoint are still remembered
    swapper.put("b1", string_id_rows(0, 4))
    assert runner(swapper, mgr).run().duplicateBatches == 1
    assert loaded(mgr, "m").count == 7
    assert loaded(mgr, "m").digest == HashModel.from_bytes(
        reference_model(7).to_bytes()).digest


def test_crash_before_checkpoint_reprocesses_from_the_checkpoint_identically(env) -> None:
    swapper, mgr, log = env
    define(swapper)
    swapper.put("b1", rows(0, 3))
    runner(swapper, mgr).run()
    swapper.put("b2", rows(3, 3))
    swapper.put("b3", rows(6, 3))
    mgr.failNextSave = True
    with pytest.raises(OSError, match="disk gone"):
        runner(swapper, mgr).run()
    assert not any(entry.startswith("ack 3") or entry.startswith("ack 4") for entry in log)
    swapper.crash()   # b2, b3 were never acked: redelivered
    runner(swapper, mgr).run()
    assert scores(swapper) == reference_scores(9)   # re-published results are identical
    assert loaded(mgr, "m").count == 9


def test_define_is_idempotent_and_conflicts_are_reported(env) -> None:
    swapper, mgr, _ = env
    define(swapper, batchID="d1")
    define(swapper, batchID="d2")
    define(swapper, {**DEFINITION, "modelConfig": {"seed": 8}}, batchID="d3")
    swapper.put("d4", [ModelCommand("c", "defineModel", {"modelConfig": {}})])
    swapper.put("d5", [ModelCommand("c", "reticulateSplines")])
    runner(swapper, mgr).run()
    published = [item for _, results in swapper.results for item in results]
    assert [item.status for item in published] == [
        errors.SUCCESS, errors.SUCCESS, errors.ERR_MODEL_ALREADY_EXISTS,
        errors.ERR_INVALID_ARG, errors.ERR_INVALID_ARG]
    assert "different definition" in published[2].errorMessage
    assert "inferenceArgs" in published[3].errorMessage
    assert mgr.loadModelDefinition("m") == DEFINITION


def test_delete_removes_checkpoint_and_queue_and_repeats_succeed(env) -> None:
    swapper, mgr, log = env
    define(swapper)
    swapper.put("b1", rows(0, 2))
    swapper.put("del", [ModelCommand("c-del", "deleteModel")])
    stats = runner(swapper, mgr).run()
    assert stats.outcome is RunOutcome.DELETED
    assert swapper.results[-1][1] == [ModelCommandResult("c-del", "deleteModel", 0)]
    assert not mgr.hasModel("m") and swapper.deletedQueues == ["m"]
    assert log[-1] == "ack 3 multiple"
    # a redelivered deleteModel (entry already gone) is still a success
    swapper.deletedQueues.clear()
    swapper.put("del", [ModelCommand("c-del2", "deleteModel")])
    runner(swapper, mgr).run()
    assert swapper.results[-1][1] == [ModelCommandResult("c-del2", "deleteModel", 0)]


def test_a_model_defined_again_behind_its_delete_keeps_its_queue_and_starts_afresh(env) -> None:
    swapper, mgr, log = env
    define(swapper)
    swapper.put("b1", rows(0, 3))
    assert runner(swapper, mgr).run().outcome is RunOutcome.DRAINED
    other = {**DEFINITION, "modelConfig": {"seed": 8}}
    # un-monitored and monitored again before the runner saw the delete
    swapper.put("del", [ModelCommand("c-del", "deleteModel")])
    swapper.put("def2", [ModelCommand("c-def2", "defineModel", other)])
    swapper.put("b2", rows(0, 4))
    first = runner(swapper, mgr)
    assert first.run().outcome is RunOutcome.DELETED
    assert swapper.deletedQueues == [] and not mgr.hasModel("m")
    assert log[-1] == "ack 3 multiple" and [b for b, _ in swapper.queue] == ["def2", "b2"]
    assert not first.isCurrent()
    swapper.results.clear()
    assert runner(swapper, mgr).run().outcome is RunOutcome.DRAINED
    assert swapper.results[0][1][0] == ModelCommandResult("c-def2", "defineModel", 0)
    model = HashModel.create(other["modelConfig"])
    assert scores(swapper) == {r.rowID: model.run(*r.data) for r in rows(0, 4)}
    assert mgr.loadModelDefinition("m") == other
    assert loaded(mgr, "m").to_bytes() == model.to_bytes()


def test_clone_uses_the_in_memory_state_and_reports_missing_source(env, tmp_path) -> None:
    swapper, mgr, _ = env
    define(swapper)
    swapper.put("b1", rows(0, 3) + [ModelCommand("c-clone", "cloneModel", {"modelID": "m2"})])
    runner(swapper, mgr, target=10_000).run()
    assert swapper.results[-1][1][-1] == ModelCommandResult("c-clone", "cloneModel", 0)
    assert HashModel.from_bytes(mgr.load("m2")).count == 3
    other = FakeSwapper([])
    other.put("x", [ModelCommand("c", "cloneModel", {"modelID": "m3"})])
    ModelRunner("ghost", other, mgr, targetRequestsPerCheckpoint=5,
                modelFactory=HashModel).run()
    result = other.results[0][1][0]
    assert result.status == errors.ERR_NO_SUCH_MODEL and "ghost" in result.errorMessage


def test_inference_errors_become_error_results_and_the_run_continues(env) -> None:
    swapper, mgr, _ = env
    swapper.put("early", rows(0, 1))          # before defineModel: no such model
    define(swapper)
    swapper.put("b1", [ModelInputRow(1, (T0, 666.0)), ModelInputRow(2, ("not a time", 1.0)),
                       ModelInputRow(3, (T0, 1.0))])
    runner(swapper, mgr).run()
    early = swapper.results[0][1][0]
    assert early.status == errors.ERR_NO_SUCH_MODEL
    # rows before a command go out before it; the definition's result with the rows after it
    definedResult, boom, badTime, ok = swapper.results[1][1]
    assert definedResult.method == "defineModel"
    assert boom.status == errors.ERR_ROW_FAILED and boom.anomalyScore is None   # this row only
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", boom.errorMessage)
    assert "the model chokes on 666" in boom.errorMessage and "(tb: ..." in boom.errorMessage
    assert len(boom.errorMessage.split("(tb: ...", 1)[1]) <= 401
    assert badTime.status == errors.ERR_INVALID_ARG and "data[0]" in badTime.errorMessage
    assert ok.status == 0


def test_stop_request_ends_the_run_after_a_checkpoint_and_ack(env) -> None:
    swapper, mgr, log = env
    define(swapper)
    for i in range(5):
        swapper.put(f"b{i}", rows(2 * i, 2))
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    stats = runner(swapper, mgr, stop=stop).run()
    assert stats.outcome is RunOutcome.STOPPED and stats.batches == 3
    assert log == ["checkpoint ['def', 'b0', 'b1']", "ack 3 multiple"]
    assert len(swapper.queue) == 3 and swapper.unacked == []
    runner(swapper, mgr).run()
    assert scores(swapper) == reference_scores(10)


class CountingHashModel(HashModel):
    loads = 0       # models made: loaded from bytes or created from the definition

    @classmethod
    def create(cls, modelConfig: dict) -> HashModel:
        CountingHashModel.loads += 1
        return super().create(modelConfig)

    @classmethod
    def from_bytes(cls, data: bytes) -> HashModel:
        CountingHashModel.loads += 1
        return super().from_bytes(data)


def test_small_checkpoints_are_incremental_and_replay_to_the_same_state(env) -> None:
    swapper, mgr, _ = env
    limit = MAX_INCREMENTAL_CHECKPOINT_ROWS
    step = limit // 4                           # three idle checkpoints stay within it
    define(swapper)
    swapper.put("b0", rows(0, 5))
    runner(swapper, mgr).run()
    # a new model's first checkpoint: no bytes, its definition plus the rows to replay
    assert mgr.load("m") == b""
    attributes = mgr.loadCheckpointAttributes("m")
    assert attributes["fromDefinition"] and len(attributes["replayRows"]) == 5
    assert loaded(mgr, "m").count == 5
    swapper.put("b1", rows(5, limit))           # more rows than the limit since the definition
    runner(swapper, mgr).run()
    full = mgr.load("m")
    base = 5 + limit
    assert HashModel.from_bytes(full).count == base
    attributes = mgr.loadCheckpointAttributes("m")
    assert attributes["replayRows"] == [] and not attributes["fromDefinition"]
    for i in range(1, 4):                       # three idle checkpoints of `step` rows each
        swapper.put(f"b{i + 1}", rows(base + step * (i - 1), step))
        runner(swapper, mgr).run()
        assert mgr.load("m") == full            # model bytes untouched: rows saved instead
        assert len(mgr.loadCheckpointAttributes("m")["replayRows"]) == step * i
        assert loaded(mgr, "m").count == base + step * i
    extra = limit - 3 * step + 1                # beyond the limit since the full one: full
    swapper.put("b5", rows(base + 3 * step, extra))
    runner(swapper, mgr).run()
    assert mgr.load("m") != full
    assert mgr.loadCheckpointAttributes("m")["replayRows"] == []
    total = base + 3 * step + extra
    assert HashModel.from_bytes(mgr.load("m")).count == total
    assert scores(swapper) == reference_scores(total)


def test_a_clone_of_an_incremental_checkpoint_keeps_the_replay_rows(env) -> None:
    swapper, mgr, _ = env
    define(swapper)
    swapper.put("b0", rows(0, 3))
    runner(swapper, mgr).run()
    swapper.put("b1", rows(3, 3))
    runner(swapper, mgr).run()
    mgr.clone("m", "copy")
    assert loaded(mgr, "copy").count == 6


def test_a_resident_runner_is_reused_only_while_its_checkpoint_is_current(env) -> None:
    swapper, mgr, _ = env
    define(swapper)
    swapper.put("b0", rows(0, 4))
    first = ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=500,
                        modelFactory=CountingHashModel)
    first.run()
    assert first.isCurrent() and first.model.count == 4
    CountingHashModel.loads = 0
    swapper.put("b1", rows(4, 4))
    stats = first.run()                       # run again, resident: no load
    assert CountingHashModel.loads == 0 and stats.extra.get("resident")
    # another runner moves the checkpoint on: the resident one is stale
    swapper.put("b2", rows(8, 4))
    ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=500,
                modelFactory=CountingHashModel).run()
    assert CountingHashModel.loads == 1 and not first.isCurrent()
    assert scores(swapper) == reference_scores(12)


class ListReplaySource:
    """The durable store of the input rows (metric_data's role), in memory."""

    def __init__(self) -> None:
        self.rows: dict[int, ModelInputRow] = {}
        self.scored: set[int] = set()
        self.reads: list[int] = []

    def store(self, batch: list[ModelInputRow]) -> list[ModelInputRow]:
        for row in batch:
            self.rows[row.rowID] = row
        return batch

    def rowsAfter(self, modelID: str, rowID: int) -> list[ReplayRow]:
        self.reads.append(rowID)
        return [ReplayRow(r.rowID, r.data[0], r.data[1], r.rowID in self.scored)
                for i, r in sorted(self.rows.items()) if i > rowID]


def lazy_runner(swapper, mgr, source, everyRows: int = 10, clock=lambda: 0.0) -> ModelRunner:
    return ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=500,
                       modelFactory=HashModel, replaySource=source,
                       checkpointPolicy=CheckpointPolicy(everyRows, 3600.0), clock=clock)


def test_lazy_checkpoints_ack_each_batch_and_save_every_n_rows(env) -> None:
    swapper, mgr, log = env
    source = ListReplaySource()
    define(swapper)
    swapper.put("b0", source.store(rows(0, 2)))
    resident = lazy_runner(swapper, mgr, source, everyRows=5)
    resident.run()                            # first checkpoint before the first ack
    assert log[-2:] == ["checkpoint ['def', 'b0']", "ack 2 multiple"]
    log.clear()
    for i in range(4):                        # rows 2..9, two per batch
        swapper.put(f"c{i}", source.store(rows(2 + 2 * i, 2)))
        resident.run()
    # acked one by one as results went out; one checkpoint after 5 more rows (at row 5)
    assert [entry for entry in log if entry.startswith("checkpoint")] == [
        "checkpoint ['c0', 'c1', 'c2']"]
    assert [entry for entry in log if entry.startswith("ack")] == [
        "ack 3 multiple", "ack 4 multiple", "ack 5 multiple", "ack 6 multiple"]
    assert not swapper.unacked and resident.dirty
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 7
    assert resident.checkpointIfDirty() and not resident.dirty
    assert loaded(mgr, "m").count == 10
    assert scores(swapper) == reference_scores(10)


def test_a_crash_after_lazy_acks_replays_the_stored_rows_exactly_once(env) -> None:
    swapper, mgr, _ = env
    source = ListReplaySource()
    define(swapper)
    swapper.put("b0", source.store(rows(0, 3)))
    lost = lazy_runner(swapper, mgr, source, everyRows=100)
    lost.run()                                # checkpoint at row 2
    for i in range(3):                        # rows 3..8 acked, not checkpointed
        swapper.put(f"c{i}", source.store(rows(3 + 2 * i, 2)))
        lost.run()
    assert not swapper.unacked and loaded(mgr, "m").count == 3
    source.scored.update(range(0, 7))         # rows 7, 8: results lost in the crash
    del lost                                  # the slot died (kill -9): its model is gone
    swapper.results.clear()
    source.store(rows(9, 2))                  # stored, not yet sent to the model
    swapper.put("c9", rows(9, 3)[:2])         # ... then sent
    swapper.put("d", source.store(rows(11, 1)))
    fresh = lazy_runner(swapper, mgr, source, everyRows=100)
    stats = fresh.run()
    assert source.reads == [2] and stats.extra["replayedRows"] == 9   # rows 3..11
    assert stats.duplicateRows == 3           # rows 9..11 came from the replay
    published = [r.rowID for _, batch in swapper.results for r in batch]
    assert published == [7, 8, 9, 10, 11]    # the replayed rows not scored yet
    assert fresh.model.count == 12 and fresh.model.digest == reference_model(12).digest
    assert {k: v for k, v in scores(swapper).items()} == {
        k: v for k, v in reference_scores(12).items() if k >= 7}


def test_checkpoint_due_by_age(env) -> None:
    swapper, mgr, _ = env
    source = ListReplaySource()
    now = [0.0]
    define(swapper)
    swapper.put("b0", source.store(rows(0, 1)))
    resident = ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=500,
                           modelFactory=HashModel, replaySource=source,
                           checkpointPolicy=CheckpointPolicy(1000, 60.0), clock=lambda: now[0])
    resident.run()
    swapper.put("b1", source.store(rows(1, 1)))
    resident.run()
    assert resident.dirty and not resident.checkpointDue()
    now[0] = 59.0
    assert not resident.checkpointDue()
    now[0] = 60.0
    assert resident.checkpointDue()
    assert resident.checkpointIfDirty() and not resident.checkpointDue()
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == 1


def test_a_model_error_forces_the_next_checkpoint_to_be_full(env) -> None:
    swapper, mgr, _ = env
    define(swapper)
    swapper.put("b0", rows(0, 2))
    runner(swapper, mgr).run()
    full = mgr.load("m")
    swapper.put("b1", [ModelInputRow(2, (T0, 666.0))] + rows(3, 2))
    runner(swapper, mgr).run()
    assert mgr.load("m") != full
    assert mgr.loadCheckpointAttributes("m")["replayRows"] == []


def test_rows_resent_under_new_batch_ids_are_skipped_by_row_id(env) -> None:
    swapper, mgr, _ = env
    define(swapper)
    for i in range(4):                       # several checkpoints: b0's id is long forgotten
        swapper.put(f"b{i}", rows(3 * i, 3))
        runner(swapper, mgr).run()
    swapper.put("resend-of-b0", rows(0, 3))  # e.g. the storer re-sending after a crash
    swapper.put("overlap", rows(10, 4))      # rows 10, 11 were applied; 12, 13 are new
    stats = runner(swapper, mgr).run()
    assert stats.duplicateRows == 5
    assert [r.rowID for r in swapper.results[-1][1]] == [12, 13]
    assert scores(swapper) == reference_scores(14)
    assert loaded(mgr, "m").count == 14



def test_a_clones_first_checkpoint_builds_on_the_cloned_bytes(env) -> None:
    swapper, mgr, _ = env
    define(swapper)
    swapper.put("b0", rows(0, 150))
    runner(swapper, mgr).run()                   # a full checkpoint of 150 rows
    mgr.clone("m", "copy")
    cloned = mgr.load("copy")
    copyRunner = ModelRunner("copy", swapper, mgr, targetRequestsPerCheckpoint=500,
                             modelFactory=HashModel)
    swapper.put("c0", rows(150, 3))
    copyRunner.run()
    assert mgr.load("copy") == cloned            # no serialization: the rows are replayed
    assert len(mgr.loadCheckpointAttributes("copy")["replayRows"]) == 3
    assert loaded(mgr, "copy").digest == reference_model(153).digest


def test_lazy_mode_sends_one_result_message_per_run_of_consecutive_rows(env) -> None:
    swapper, mgr, log = env
    source = ListReplaySource()
    define(swapper)
    swapper.put("b0", source.store(rows(0, 2)))
    resident = lazy_runner(swapper, mgr, source, everyRows=1000)
    resident.run()
    swapper.results.clear()
    log.clear()
    for i in range(5):                            # a backlog: five batches of 3 rows
        swapper.put(f"c{i}", source.store(rows(2 + 3 * i, 3)))
    swapper.put("gap", source.store(rows(20, 2)))  # rows 17..19 never arrive
    resident.run()
    assert [[r.rowID for r in batch] for _, batch in swapper.results] == [
        list(range(2, 17)), [20, 21]]
    assert [entry for entry in log if entry.startswith("ack")] == ["ack 8 multiple"]
    assert not swapper.unacked


def test_template_factory_copies_are_the_same_model_as_created_ones() -> None:
    from htmengine.algorithms.model import HtmAnomalyModel
    from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams

    config = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0, maxVal=100)["modelConfig"]
    factory = TemplateModelFactory(HtmAnomalyModel, size=1)
    first, second = factory.create(config), factory.create(config)
    created = HtmAnomalyModel.create(config)
    records = [(T0 + timedelta(minutes=5 * i), float((i * 37) % 100)) for i in range(150)]
    scoresFirst = [first.run(*r) for r in records]
    assert scoresFirst == [created.run(*r) for r in records]
    assert first.to_bytes() == created.to_bytes()
    assert second.records_seen == 0           # copies are independent of each other
    other = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0, maxVal=5)["modelConfig"]
    assert factory.create(other).to_bytes() == HtmAnomalyModel.create(other).to_bytes()


def test_a_lazy_model_is_saved_in_full_once_and_its_clones_replay_nothing(env) -> None:
    swapper, mgr, _ = env
    source = ListReplaySource()
    define(swapper)
    swapper.put("b0", source.store(rows(0, 2)))
    resident = lazy_runner(swapper, mgr, source, everyRows=1000)
    resident.run()                                # first checkpoint: replay rows, no bytes
    swapper.put("b1", source.store(rows(2, 3)))
    resident.run()                                # lazy: 3 rows not checkpointed
    swapper.put("c", [ModelCommand(f"c{i}", "cloneModel", {"modelID": f"copy{i}"})
                      for i in range(3)])
    resident.run()
    assert [r.status for r in swapper.results[-1][1]] == [0, 0, 0]
    attributes = mgr.loadCheckpointAttributes("m")
    assert attributes["replayRows"] == [] and not attributes["fromDefinition"]
    for i in range(3):
        assert mgr.loadCheckpointAttributes(f"copy{i}").get("replayRows", []) == []
        assert loaded(mgr, f"copy{i}").digest == reference_model(5).digest


class SizedHashModel(HashModel):
    measured = 0     # state_nbytes() calls

    def state_nbytes(self) -> int:
        SizedHashModel.measured += 1
        return 1000 + self.count


def test_a_resident_models_size_is_measured_again_only_after_some_rows(env) -> None:
    from htmengine.model_swapper.model_runner import RESIDENT_BYTES_MEASURE_ROWS as every
    swapper, mgr, _ = env
    define(swapper)
    SizedHashModel.measured = 0
    resident = ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=500,
                           modelFactory=SizedHashModel)
    assert resident.residentBytes() == 0                  # not loaded yet
    sizes = []
    for i in range(2 * every):                            # one row per run
        swapper.put(f"b{i}", rows(i, 1))
        resident.run()
        sizes.append(resident.residentBytes())
    assert SizedHashModel.measured == 2
    assert sizes[:every] == [1001] * every                # measured after its first row
    assert sizes[every:] == [1001 + every] * every        # and again `every` rows later


def test_a_reloaded_model_carries_its_size_record_over(env) -> None:
    from htmengine.model_swapper.model_runner import RESIDENT_BYTES_MEASURE_ROWS as every
    swapper, mgr, _ = env
    define(swapper)
    SizedHashModel.measured = 0
    record = None
    for i in range(every + 1):          # evicted after every row: a new runner each time
        swapper.put(f"b{i}", rows(i, 1))
        runner = ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=1,
                             modelFactory=SizedHashModel, sizeRecord=record)
        runner.run()
        size = runner.residentBytes()
        record = runner.sizeRecord()
    assert SizedHashModel.measured == 2                # at the first row and `every` later
    assert size == 1001 + every and record == (1001 + every, 0)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_get_that_left_the_queue_empty_ends_the_run_without_another_get(
        env, tmp_path, lazy) -> None:
    swapper, mgr, log = env
    other = FakeSwapper([])
    other.reportsRemaining = False
    otherMgr = LoggingMgr(tmp_path / "other", other.log)
    sources = [ListReplaySource() if lazy else None for _ in range(2)]
    for fake, source in zip((swapper, other), sources, strict=True):
        define(fake)
        fake.put("b1", source.store(rows(0, 3)) if source else rows(0, 3))
        fake.put("b2", source.store(rows(3, 2)) if source else rows(3, 2))
    runs = [ModelRunner("m", fake, store, targetRequestsPerCheckpoint=4,
                        modelFactory=HashModel, replaySource=source)
            for fake, store, source in zip((swapper, other), (mgr, otherMgr), sources,
                                           strict=True)]
    assert [r.run().outcome for r in runs] == [RunOutcome.DRAINED] * 2
    # the broker's count saves the final get; nothing else changes
    assert (swapper.gets, other.gets) == (3, 4)
    assert log == other.log and swapper.results == other.results
    assert swapper.unacked == other.unacked == [] and swapper.queue == []
    # input published after that get is the next run's (its notification schedules it)
    swapper.put("b3", rows(5, 1))
    assert runs[0].run().outcome is RunOutcome.DRAINED
    assert swapper.gets == 4 and scores(swapper) == reference_scores(6)


def test_a_define_is_durable_before_its_batch_is_acked(env, monkeypatch) -> None:
    # the definition is written and fsynced by a worker thread while the runner goes on;
    # the ack (and the first checkpoint) wait for it
    from htmengine.model_swapper import checkpoint_manager as cm

    swapper, mgr, log = env
    written = cm.ModelCheckpointMgr._write_entry

    def slowWrite(self, modelID, modelDir, definitionBytes):  # noqa: ANN001, ANN202
        time.sleep(0.3)
        written(self, modelID, modelDir, definitionBytes)
        log.append(f"defined {modelID}")

    monkeypatch.setattr(cm.ModelCheckpointMgr, "_write_entry", slowWrite)
    define(swapper)
    assert runner(swapper, mgr).run().outcome is RunOutcome.DRAINED
    assert log == ["defined m", "ack 1 multiple"]
    log.clear()
    swapper.results.clear()
    other = FakeSwapper(log)
    define(other)
    other.put("b1", rows(0, 3))
    stats = ModelRunner("n", other, mgr, modelFactory=HashModel).run()
    assert stats.outcome is RunOutcome.DRAINED
    assert log == ["defined n", "checkpoint ['def', 'b1']", "ack 2 multiple"]
    assert scores(other) == reference_scores(3)
    assert loaded(mgr, "n").count == 3

