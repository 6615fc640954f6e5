"""Helpers of the runtime tests (imported by the test modules of this folder)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from process_support import REPO_ROOT, LoggedProcess, wait_for

__all__ = ["REPO_ROOT", "ServiceProcess", "unique_name", "wait_for"]


def unique_name(prefix: str = "test.metric") -> str:
    """A metric name no other test uses."""
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


class ServiceProcess(LoggedProcess):
    """A runtime service started with ``python -m <module>`` in the session's environment;
    its output goes to a log file that the test can read."""

    def __init__(self, module: str, env: dict[str, str], logPath: Path,
                 args: list[str] | None = None) -> None:
        self.module = module
        super().__init__([sys.executable, "-m", module, *(args or [])], env, logPath)
