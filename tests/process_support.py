"""Helpers shared by the test folders that run real processes: free ports, polling, and a
subprocess whose output goes to a log file."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on TCP `port`, in /proc/net/tcp's hex form ("0100007F" is
    127.0.0.1, "00000000" every interface)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port:
                found.add(address)
    return found


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.1,
             what: str = "condition") -> object:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class LoggedProcess:
    """A subprocess started from the repository root, its output in `logPath`."""

    def __init__(self, command: Sequence[str], env: dict[str, str], logPath: Path) -> None:
        self.logPath = logPath
        self._log = open(logPath, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            list(command), cwd=REPO_ROOT, env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        """Everything the process printed so far."""
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
