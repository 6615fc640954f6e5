"""Helpers for the model swapper's service tests: the real scheduler as a subprocess, and a
collector of the results it publishes (fixtures in conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import psutil

from htmengine.model_swapper.messages import ModelCommandResult, ModelInferenceResult
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface

REPO_ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


class SchedulerProcess:
    """`python -m htmengine.model_swapper.model_scheduler_service` with the session's env."""

    def __init__(self, env: dict[str, str], numSlots: int, logPath: Path) -> None:
        self.env = env
        self.numSlots = numSlots
        self.logPath = logPath
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        logFile = open(self.logPath, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "htmengine.model_swapper.model_scheduler_service",
             "--num-slots", str(self.numSlots), "--min-run-seconds", "1"],
            env=self.env, cwd=REPO_ROOT, stdout=logFile, stderr=subprocess.STDOUT)
        logFile.close()

    def slotPids(self) -> list[int]:
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = [c.pid for c in psutil.Process(self.proc.pid).children()
                        if "resource_tracker" not in " ".join(c.cmdline())]
            if len(children) >= self.numSlots:
                return children
            time.sleep(0.1)
        raise AssertionError("slot processes did not start")

    def kill9(self) -> None:
        """SIGKILL the scheduler; its slot processes die with it (PDEATHSIG)."""
        assert self.proc is not None
        children = psutil.Process(self.proc.pid).children(recursive=True)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"slot processes outlived the scheduler: {alive}"

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)

    def logTail(self, chars: int = 4000) -> str:
        return self.logPath.read_text(errors="replace")[-chars:]


class ResultCollector:
    """Consumes the results queue into per-model lists of result items."""

    def __init__(self) -> None:
        self.swapper = ModelSwapperInterface()
        self.byModel: dict[str, list[ModelCommandResult | ModelInferenceResult]] = (
            defaultdict(list))
        self.messages = 0

    def purge(self) -> None:
        self.swapper.bus.declare_queue(self.swapper.resultsQueueName)
        self.swapper.bus.purge_queue(self.swapper.resultsQueueName)

    def collectUntil(self, done: Callable[[], bool], timeout: float,
                     describe: Callable[[], str] = lambda: "") -> None:
        deadline = time.monotonic() + timeout
        bus = self.swapper.bus
        queue = self.swapper.resultsQueueName
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for results; {describe()}")
            message = bus.get(queue)
            if message is None:
                time.sleep(0.05)
                continue
            from htmengine.model_swapper.messages import unpackResultMessage
            batch = unpackResultMessage(message.body)
            self.byModel[batch.modelID].extend(batch.objects)
            self.messages += 1
            bus.ack(message.delivery_tag)

    def rowScores(self, modelID: str) -> list[tuple[int, float]]:
        out = []
        for item in self.byModel[modelID]:
            if isinstance(item, ModelInferenceResult):
                assert item.status == 0, item.errorMessage
                out.append((item.rowID, item.anomalyScore))
        return out

    def close(self) -> None:
        self.swapper.close()


def schedulerEnv(engine_env, modelFactory: str | None,
                 requestsPerCheckpoint: int | None = None) -> dict[str, str]:
    env = engine_env.subprocess_env()
    if requestsPerCheckpoint is not None:
        env["_NTA_UTILS_CONFIG__MODEL_SWAPPER__MODEL_RUNNER__TARGET_REQUESTS_PER_CHECKPOINT"] = (
            str(requestsPerCheckpoint))
    # the swapper alone: its input rows are not in metric_data, so checkpoint before acking
    env["_NTA_UTILS_CONFIG__MODEL_SWAPPER__MODEL_RUNNER__REPLAY_SOURCE"] = "none"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(HERE)])
    env["HTMENGINE_LOG_LEVEL"] = "INFO"
    if modelFactory:
        env["HTMENGINE_MODEL_FACTORY"] = modelFactory
    else:
        env.pop("HTMENGINE_MODEL_FACTORY", None)
    return env
