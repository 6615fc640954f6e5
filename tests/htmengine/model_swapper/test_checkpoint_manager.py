"""ModelCheckpointMgr: define/save/load/clone/remove, and atomicity when a write is cut short."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from htmengine.exceptions import InvalidInputError
from htmengine.model_swapper import checkpoint_manager as cm
from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.errors import (
    CheckpointCorruptError,
    ModelAlreadyExists,
    ModelNotFound,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFINITION = {"modelConfig": {"x": 1}, "inferenceArgs": {}, "inputRecordSchema": [["c0"]]}


@pytest.fixture()
def mgr(tmp_path: Path) -> ModelCheckpointMgr:
    return ModelCheckpointMgr(tmp_path / "archive")


def test_define_load_definition_and_model_ids(mgr: ModelCheckpointMgr) -> None:
    mgr.define("m1", DEFINITION)
    mgr.define("m2", {**DEFINITION, "inferenceArgs": {"k": 2}})
    assert mgr.loadModelDefinition("m1") == DEFINITION
    assert mgr.getModelIDs() == ["m1", "m2"]
    assert mgr.loadCheckpoint("m1") is None
    assert mgr.loadCheckpointAttributes("m1") == {}
    with pytest.raises(ModelAlreadyExists):
        mgr.define("m1", DEFINITION)
    with pytest.raises(ModelNotFound):
        mgr.loadModelDefinition("nope")
    with pytest.raises(ModelNotFound):
        mgr.load("m1")  # defined, never saved
    assert (mgr.root / "m1" / cm.VERSION_FILE_NAME).read_text() == cm.ENTRY_VERSION


def test_save_replaces_checkpoint_and_removes_the_old_store(mgr: ModelCheckpointMgr) -> None:
    mgr.define("m", DEFINITION)
    assert mgr.save("m", b"state-1", {"batchIds": ["a"]}) == 1
    assert mgr.save("m", b"state-2", {"batchIds": ["b"], "previousBatchIds": ["a"]}) == 2
    checkpoint = mgr.loadCheckpoint("m")
    assert checkpoint is not None
    assert (checkpoint.generation, checkpoint.modelState) == (2, b"state-2")
    assert checkpoint.attributes["batchIds"] == ["b"]
    assert checkpoint.attributes["previousBatchIds"] == ["a"]
    stores = [p.name for p in (mgr.root / "m").iterdir() if p.name.startswith(cm.STORE_PREFIX)]
    assert len(stores) == 1
    assert os.readlink(mgr.root / "m" / cm.CURRENT_LINK_NAME) == stores[0]
    with pytest.raises(ModelNotFound):
        mgr.save("missing", b"x", {})


def test_crash_between_scratch_write_and_rename_keeps_previous_checkpoint(
        mgr: ModelCheckpointMgr, monkeypatch: pytest.MonkeyPatch) -> None:
    mgr.define("m", DEFINITION)
    mgr.save("m", b"good", {"batchIds": ["a"]})
    real_rename = os.rename
    calls = []

    def failing_rename(src, dst):  # the store is written and fsynced; the "crash" hits here
        calls.append((src, dst))
        raise OSError("simulated crash")

    monkeypatch.setattr(cm.os, "rename", failing_rename)
    with pytest.raises(OSError, match="simulated crash"):
        mgr.save("m", b"new-but-lost", {"batchIds": ["b"]})
    monkeypatch.setattr(cm.os, "rename", real_rename)
    assert calls and Path(calls[0][0]).parent == mgr.root / cm.SCRATCH_DIR_NAME
    checkpoint = mgr.loadCheckpoint("m")
    assert checkpoint is not None and checkpoint.modelState == b"good"
    assert checkpoint.attributes["batchIds"] == ["a"]
    # the failed write left nothing behind in the scratch area, nor did the good ones
    assert list((mgr.root / cm.SCRATCH_DIR_NAME).iterdir()) == []


def test_crash_between_store_rename_and_link_swap_keeps_previous_checkpoint(
        mgr: ModelCheckpointMgr, monkeypatch: pytest.MonkeyPatch) -> None:
    mgr.define("m", DEFINITION)
    mgr.save("m", b"good", {})
    real_rename = os.rename

    def rename_store_then_crash(src, dst):
        if Path(dst).name == cm.CURRENT_LINK_NAME:
            raise OSError("simulated crash before the link swap")
        return real_rename(src, dst)

    monkeypatch.setattr(cm.os, "rename", rename_store_then_crash)
    with pytest.raises(OSError):
        mgr.save("m", b"orphan", {})
    monkeypatch.setattr(cm.os, "rename", real_rename)
    assert mgr.load("m") == b"good"
    # the orphaned store is swept by the next successful save
    mgr.save("m", b"next", {})
    assert mgr.load("m") == b"next"
    assert len([p for p in (mgr.root / "m").iterdir() if p.name.startswith(cm.STORE_PREFIX)]) == 1


_WRITER = textwrap.dedent("""
    import sys
    from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
    mgr = ModelCheckpointMgr(sys.argv[1])
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        payload = (str(i).encode() + b":") * 20000
        mgr.save("m", payload, {"i": i})
""")


def test_sigkill_during_saves_always_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    ModelCheckpointMgr(root).define("m", DEFINITION)
    for delay in (0.15, 0.3, 0.45):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)],
                                stdout=subprocess.PIPE, cwd=REPO_ROOT,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        checkpoint = ModelCheckpointMgr(root).loadCheckpoint("m")
        assert checkpoint is not None
        i = checkpoint.attributes["i"]
        assert checkpoint.modelState == (str(i).encode() + b":") * 20000
    # dead writers' scratch directories were swept by the next manager
    assert list((root / cm.SCRATCH_DIR_NAME).iterdir()) == []


def test_an_empty_state_is_stored_as_no_file_and_read_back_as_empty(
        mgr: ModelCheckpointMgr) -> None:
    mgr.define("m", DEFINITION)
    mgr.save("m", b"", {"fromDefinition": True, "replayRows": [1]})

    def store() -> Path:
        return mgr.root / "m" / os.readlink(mgr.root / "m" / cm.CURRENT_LINK_NAME)

    assert not (store() / cm.MODEL_FILE_NAME).exists()
    assert mgr.load("m") == b""
    mgr.save("m", None, {"fromDefinition": True, "replayRows": [1, 2]})   # incremental
    assert not (store() / cm.MODEL_FILE_NAME).exists() and mgr.load("m") == b""
    mgr.clone("m", "c")
    assert mgr.load("c") == b""
    assert mgr.loadCheckpointAttributes("c")["replayRows"] == [1, 2]
    mgr.save("m", b"full", {})
    assert mgr.load("m") == b"full" and mgr.load("c") == b""
    # a model.bin lost from a store that had one is still reported
    (store() / cm.MODEL_FILE_NAME).unlink()
    with pytest.raises(CheckpointCorruptError):
        mgr.load("m")


def test_clone_copies_definition_and_state(mgr: ModelCheckpointMgr) -> None:
    mgr.define("src", DEFINITION)
    mgr.clone("src", "never-saved")
    assert mgr.loadModelDefinition("never-saved") == DEFINITION
    assert mgr.loadCheckpoint("never-saved") is None
    mgr.save("src", b"saved", {"batchIds": ["x"]})
    mgr.clone("src", "copy")
    assert mgr.load("copy") == b"saved"
    assert "batchIds" not in mgr.loadCheckpointAttributes("copy")
    mgr.clone("src", "from-memory", modelState=b"in-memory")
    assert mgr.load("from-memory") == b"in-memory"
    # the clone is independent of its source
    mgr.save("copy", b"copy-2", {})
    assert mgr.load("src") == b"saved"
    with pytest.raises(ModelAlreadyExists):
        mgr.clone("src", "copy")
    with pytest.raises(ModelNotFound):
        mgr.clone("ghost", "other")


def test_remove(mgr: ModelCheckpointMgr) -> None:
    mgr.define("m", DEFINITION)
    mgr.save("m", b"s", {})
    mgr.remove("m")
    assert mgr.getModelIDs() == []
    assert not mgr.hasModel("m")
    with pytest.raises(ModelNotFound):
        mgr.remove("m")
    mgr.define("m", DEFINITION)  # the id can be reused
    assert mgr.loadCheckpoint("m") is None


@pytest.mark.parametrize("bad", ["", ".hidden", "a/b", "x\0y", 5])
def test_bad_model_ids_are_rejected(mgr: ModelCheckpointMgr, bad) -> None:
    with pytest.raises(InvalidInputError, match="modelID"):
        mgr.define(bad, DEFINITION)


def test_root_comes_from_config(engine_env) -> None:
    assert ModelCheckpointMgr().root == engine_env.checkpoint_root


def test_incremental_save_keeps_model_bytes_and_replaces_attributes(
        mgr: ModelCheckpointMgr) -> None:
    mgr.define("m", DEFINITION)
    with pytest.raises(ModelNotFound, match="no checkpoint"):
        mgr.save("m", None, {})
    mgr.save("m", b"full-state", {"replayRows": []})
    assert mgr.save("m", None, {"replayRows": [[[0, 0], 1.0]]}) == 2
    assert mgr.save("m", None, {"replayRows": [[[0, 0], 1.0], [[300, 0], 2.0]]}) == 3
    checkpoint = mgr.loadCheckpoint("m")
    assert checkpoint is not None and checkpoint.modelState == b"full-state"
    assert checkpoint.attributes["replayRows"] == [[[0, 0], 1.0], [[300, 0], 2.0]]
    stores = [p for p in (mgr.root / "m").iterdir() if p.name.startswith(cm.STORE_PREFIX)]
    assert len(stores) == 1


def test_clones_link_the_saved_bytes_of_their_source(mgr: ModelCheckpointMgr) -> None:
    mgr.define("src", DEFINITION)
    mgr.save("src", b"big state", {"replayRows": [["t", 1.0]]})
    mgr.clone("src", "a")
    mgr.clone("a", "b")

    def modelFile(modelID: str) -> Path:
        return mgr.root / modelID / "current" / "model.bin"

    inodes = {os.stat(modelFile(m)).st_ino for m in ("src", "a", "b")}
    assert len(inodes) == 1                       # one file, three names
    assert mgr.loadCheckpointAttributes("b")["replayRows"] == [["t", 1.0]]
    mgr.save("src", b"changed", {})               # replacing the source's bytes ...
    mgr.remove("a")
    assert mgr.load("b") == b"big state"          # ... leaves the clones' as they were


def test_definition_or_attributes_that_are_not_json_objects_are_corrupt(
        mgr: ModelCheckpointMgr) -> None:
    """A definition or attributes file holding JSON that is not an object (a list here) is
    reported as a corrupt checkpoint, not handed to the runner."""
    mgr.define("m", DEFINITION)
    mgr.save("m", b"state", {"batchIds": ["a"]})
    (mgr.root / "m" / cm.DEFINITION_FILE_NAME).write_text("[1, 2]")
    with pytest.raises(CheckpointCorruptError, match="expected a JSON object, got list"):
        mgr.loadModelDefinition("m")
    (mgr.root / "m" / cm.CURRENT_LINK_NAME / cm.ATTRIBUTES_FILE_NAME).write_text('"text"')
    with pytest.raises(CheckpointCorruptError, match="expected a JSON object, got str"):
        mgr.loadCheckpointAttributes("m")


def test_a_background_define_is_waited_for_by_every_later_call(
        mgr: ModelCheckpointMgr, monkeypatch) -> None:
    written = cm.ModelCheckpointMgr._write_entry

    def slowWrite(self, modelID, modelDir, definitionBytes):  # noqa: ANN001, ANN202
        time.sleep(0.3)
        written(self, modelID, modelDir, definitionBytes)

    monkeypatch.setattr(cm.ModelCheckpointMgr, "_write_entry", slowWrite)
    mgr.define("m1", DEFINITION, background=True)
    assert not (mgr.root / "m1").exists()            # still being written
    assert mgr.loadModelDefinition("m1") == DEFINITION   # waits for it
    mgr.define("m2", DEFINITION, background=True)
    with pytest.raises(ModelAlreadyExists):
        mgr.define("m2", DEFINITION, background=True)
    mgr.define("m3", DEFINITION, background=True)
    assert mgr.getModelIDs() == ["m1", "m2", "m3"]
    mgr.define("m4", DEFINITION, background=True)
    mgr.save("m4", b"state", {"k": 1})
    assert mgr.load("m4") == b"state"
    mgr.define("m5", DEFINITION, background=True)
    mgr.settle("m5")
    assert (mgr.root / "m5" / cm.DEFINITION_FILE_NAME).is_file()


def test_a_failed_background_define_raises_on_settle_and_leaves_no_entry(
        mgr: ModelCheckpointMgr, monkeypatch) -> None:
    def failingFsync(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(cm.os, "fsync", failingFsync)
    mgr.define("m1", DEFINITION, background=True)
    with pytest.raises(OSError, match="I/O error"):
        mgr.settle("m1")
    monkeypatch.undo()
    assert not mgr.hasModel("m1")
    assert list((mgr.root / cm.SCRATCH_DIR_NAME).iterdir()) == []
    mgr.define("m1", DEFINITION, background=True)   # a redelivered define succeeds
    mgr.settle()
    assert mgr.loadModelDefinition("m1") == DEFINITION
