"""Helpers of the runtime tests (imported by the test modules of this folder)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def wait_for(condition: Callable[[], object], timeout: float = 20.0,
             interval: float = 0.05, what: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def unique_name(prefix: str = "test.metric") -> str:
    """A metric name no other test uses."""
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


class ServiceProcess:
    """A runtime service started with ``python -m <module>`` in the session's environment;
    its output goes to a log file that the test can read."""

    def __init__(self, module: str, env: dict[str, str], logPath: Path,
                 args: list[str] | None = None) -> None:
        self.module = module
        self.logPath = logPath
        self._log = open(logPath, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *(args or [])], cwd=REPO_ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"}, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """Everything the service logged so far."""
        return self.logPath.read_text()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, return the exit code (kill after `timeout`)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode
