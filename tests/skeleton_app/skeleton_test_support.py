"""Helpers of the skeleton app tests: run the web app as a real subprocess, make HTTP requests,
wait for conditions."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SKELETON_DIR = REPO_ROOT / "skeleton_app"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.2,
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


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on (host, port)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Response:
    """An HTTP response, read completely."""

    status: int
    content_type: str
    text: str


def http_request(port: int, method: str, path: str, body: bytes | str | None = None,
                 timeout: float = 60.0) -> Response:
    """One real HTTP request to 127.0.0.1:`port`."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return Response(resp.status, resp.getheader("Content-Type", ""),
                        resp.read().decode("utf-8"))
    finally:
        conn.close()


class WebAppProcess:
    """``python skeleton_app/webapp.py --port P`` with its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(SKELETON_DIR / "webapp.py"), "--port", str(self.port)],
            cwd=REPO_ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=self._log,
            stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.process.poll() is not None or port_open(self.port),
                     timeout=60, what="the web app to listen")
        except AssertionError:
            self.stop()
            raise
        if self.process.poll() is not None:
            self.stop()
            raise AssertionError(f"web app exited early:\n{self.output()}")

    def output(self) -> str:
        """Everything the web app logged so far."""
        return self.log_path.read_text()

    def request(self, method: str, path: str, body: bytes | str | None = None) -> Response:
        """An HTTP request to this web app."""
        return http_request(self.port, method, path, body)

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
