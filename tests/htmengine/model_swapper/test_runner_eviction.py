"""Evicting a lazy model without a checkpoint: its rows since the checkpoint are replayed
from the stored rows (the replay source) when it is next loaded, at most
MAX_INCREMENTAL_CHECKPOINT_ROWS of them; with the in-memory queue and HashModel of
test_model_runner."""

from __future__ import annotations

from test_model_runner import (
    HashModel,
    ListReplaySource,
    ModelCommand,
    ModelInferenceResult,
    ModelRunner,
    define,
    env,  # noqa: F401  (the fixture)
    lazy_runner,
    loaded,
    reference_model,
    reference_scores,
    rows,
    scores,
)

from htmengine.model_swapper.model_runner import MAX_INCREMENTAL_CHECKPOINT_ROWS


def evict(runner: ModelRunner) -> bool:
    """What the slot does with an evicted runner; True if it wrote a checkpoint."""
    if runner.replayableWithoutCheckpoint():
        return False
    return runner.checkpointIfDirty()


def checkpoint_two_then_run_three(swapper, mgr, source: ListReplaySource  # noqa: ANN001
                                  ) -> ModelRunner:
    """Define the model, run rows 0-1 to a checkpoint, then rows 2-4 in a runner left
    dirty (lazy, nothing checkpointed since): the runner."""
    define(swapper)
    swapper.put("b0", source.store(rows(0, 2)))
    lazy_runner(swapper, mgr, source, everyRows=1000).run()   # checkpoint: rows 0, 1
    swapper.put("b1", source.store(rows(2, 3)))
    dropped = lazy_runner(swapper, mgr, source, everyRows=1000)
    dropped.run()
    return dropped


def test_an_evicted_lazy_model_is_dropped_until_a_load_would_replay_too_many_rows(
        env) -> None:  # noqa: F811
    swapper, mgr, log = env
    source = ListReplaySource()
    define(swapper)
    swapper.put("b0", source.store(rows(0, 1)))
    lazy_runner(swapper, mgr, source, everyRows=1000).run()   # first checkpoint (row 0)
    log.clear()
    samples = 3 * (MAX_INCREMENTAL_CHECKPOINT_ROWS + 1)
    written, replayed = [], []
    for i in range(1, 1 + samples):      # one sample per run, evicted after each run
        swapper.put(f"b{i}", source.store(rows(i, 1)))
        runner = lazy_runner(swapper, mgr, source, everyRows=1000)
        stats = runner.run()
        replayed.append(stats.extra.get("replayedRows", 0))
        source.scored.update(range(i + 1))   # the anomaly service stored its results
        written.append(evict(runner))
    # a full checkpoint every MAX + 1 samples (the first one sooner: the new model's first
    # checkpoint holds row 0 as a replay row), nothing written in between
    saved = [i for i, wrote in enumerate(written) if wrote]
    assert saved[0] == MAX_INCREMENTAL_CHECKPOINT_ROWS - 1
    assert [b - a for a, b in zip(saved, saved[1:], strict=False)] == [
        MAX_INCREMENTAL_CHECKPOINT_ROWS + 1] * 2
    assert len([entry for entry in log if entry.startswith("checkpoint")]) == 3
    assert mgr.loadCheckpointAttributes("m")["replayRows"] == []
    # each load replays the dropped rows and the new one (stored before it was sent)
    assert max(replayed) == MAX_INCREMENTAL_CHECKPOINT_ROWS + 1
    assert scores(swapper) == reference_scores(1 + samples)
    # the last sample was dropped: the checkpoint ends one row before it
    assert mgr.loadCheckpointAttributes("m")["lastRowId"] == samples - 1
    assert loaded(mgr, "m").digest == reference_model(samples).digest
    assert not swapper.unacked and not swapper.queue


def test_a_dropped_model_continues_exactly_from_the_stored_rows(env) -> None:  # noqa: F811
    swapper, mgr, _ = env
    source = ListReplaySource()
    dropped = checkpoint_two_then_run_three(swapper, mgr, source)
    assert dropped.dirty and dropped.replayableWithoutCheckpoint()
    source.scored.update(range(4))        # row 4's result was not stored yet
    swapper.results.clear()
    swapper.put("b2", source.store(rows(5, 2)))
    fresh = lazy_runner(swapper, mgr, source, everyRows=1000)
    stats = fresh.run()
    assert stats.extra["replayedRows"] == 5 and stats.duplicateRows == 2
    # row 4 is published again (the anomaly service scores it once); 5 and 6 are new
    assert [r.rowID for _, batch in swapper.results for r in batch] == [4, 5, 6]
    assert fresh.model.digest == reference_model(7).digest
    assert scores(swapper) == {k: v for k, v in reference_scores(7).items() if k >= 4}


def test_models_whose_rows_cannot_be_replayed_are_checkpointed_on_eviction(
        env) -> None:  # noqa: F811
    swapper, mgr, _ = env
    define(swapper)
    swapper.put("b0", rows(0, 2))
    plain = ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=500,
                        modelFactory=HashModel)              # no replay source
    plain.run()
    assert not plain.dirty and not plain.replayableWithoutCheckpoint()
    # lazy, but a load would replay more than MAX rows: a full checkpoint first
    source = ListReplaySource()
    swapper.put("b1", source.store(rows(2, 1)))
    lazy = lazy_runner(swapper, mgr, source, everyRows=1000)
    lazy.run()
    swapper.put("b2", source.store(rows(3, MAX_INCREMENTAL_CHECKPOINT_ROWS)))
    lazy.run()
    assert lazy.dirty and not lazy.replayableWithoutCheckpoint()
    assert evict(lazy) and not lazy.dirty
    assert mgr.loadCheckpointAttributes("m")["replayRows"] == []
    assert loaded(mgr, "m").digest == reference_model(3 + MAX_INCREMENTAL_CHECKPOINT_ROWS).digest


def test_a_clone_of_a_dropped_model_has_its_stored_rows(env) -> None:  # noqa: F811
    swapper, mgr, _ = env
    source = ListReplaySource()
    dropped = checkpoint_two_then_run_three(swapper, mgr, source)
    assert evict(dropped) is False
    swapper.put("c", [ModelCommand("c1", "cloneModel", {"modelID": "copy"})])
    lazy_runner(swapper, mgr, source, everyRows=1000).run()
    assert swapper.results[-1][1][-1].status == 0
    assert loaded(mgr, "copy").digest == reference_model(5).digest
    assert loaded(mgr, "m").digest == reference_model(5).digest


class FailingReplaySource(ListReplaySource):
    """A replay source whose next read fails (the database is away)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def rowsAfter(self, modelID: str, rowID: int):  # noqa: ANN201
        if self.failures:
            self.failures -= 1
            raise OSError("the database is away")
        return super().rowsAfter(modelID, rowID)


def scores_ok(swapper) -> dict[int, float]:  # noqa: ANN001
    """The scores of the successful results (a row may have an error result first)."""
    out: dict[int, float] = {}
    for _, results in swapper.results:
        for result in results:
            if isinstance(result, ModelInferenceResult) and result.status == 0:
                score = out.setdefault(result.rowID, result.anomalyScore)
                assert score == result.anomalyScore
    return out


def test_a_load_whose_stored_rows_cannot_be_read_is_not_run_without_them(
        env) -> None:  # noqa: F811
    swapper, mgr, _ = env
    source = FailingReplaySource()
    dropped = checkpoint_two_then_run_three(swapper, mgr, source)
    assert evict(dropped) is False            # rows 2..4 are left to the replay
    source.failures = 2                       # both load attempts of the next row fail
    swapper.put("b2", source.store(rows(5, 1)))
    failed = lazy_runner(swapper, mgr, source, everyRows=1000)
    failed.run()
    assert swapper.results[-1][1][0].status != 0 and failed.model is None
    swapper.put("b3", source.store(rows(6, 1)))
    failed.run()                              # loads again: rows 2..6 replayed in order
    assert failed.model.digest == reference_model(7).digest
    assert scores_ok(swapper) == reference_scores(7)



def test_an_htm_model_evicted_at_every_sample_scores_as_an_uninterrupted_one(
        env) -> None:  # noqa: F811
    from datetime import timedelta

    from htmengine.algorithms.model import HtmAnomalyModel
    from htmengine.algorithms.model_params import getScalarMetricWithTimeOfDayAnomalyParams
    from htmengine.model_swapper.checkpoint_policy import CheckpointPolicy
    from htmengine.model_swapper.messages import ModelInputRow
    from htmengine.model_swapper.model_runner import loadCheckpointedModel

    swapper, mgr, log = env
    config = getScalarMetricWithTimeOfDayAnomalyParams(minVal=0, maxVal=100)
    definition = {key: config[key] for key in ("modelConfig", "inferenceArgs",
                                                "inputRecordSchema")}
    t0 = rows(0, 1)[0].data[0]
    series = [ModelInputRow(i, (t0 + timedelta(minutes=5 * i), float((i * 37) % 100)))
              for i in range(60)]
    source = ListReplaySource()
    define(swapper, definition)
    swapper.put("b0", source.store(series[:20]))
    writes = 0
    for i in range(20, len(series) + 1):     # a backlog of 20 rows, then one row per run
        runner = ModelRunner("m", swapper, mgr, targetRequestsPerCheckpoint=500,
                             modelFactory=HtmAnomalyModel, replaySource=source,
                             checkpointPolicy=CheckpointPolicy(1000, 3600.0))
        runner.run()
        source.scored.update(range(i))
        writes += evict(runner)
        if i < len(series):
            swapper.put(f"b{i}", source.store(series[i:i + 1]))
    # (the stored definition, whose keys are sorted as the model's header keeps them)
    reference = HtmAnomalyModel.create(mgr.loadModelDefinition("m")["modelConfig"])
    expected = {r.rowID: reference.run(*r.data) for r in series}
    assert scores_ok(swapper) == expected
    assert 3 <= writes <= 6                  # a full checkpoint every 9 samples only
    # the checkpoint plus the stored rows after it is the uninterrupted model, bit for bit
    model, _ = loadCheckpointedModel(mgr, "m", HtmAnomalyModel)
    for row in series[mgr.loadCheckpointAttributes("m")["lastRowId"] + 1:]:
        model.run(*row.data)
    assert model.to_bytes() == reference.to_bytes()
    assert len([entry for entry in log if entry.startswith("checkpoint")]) == writes + 1
