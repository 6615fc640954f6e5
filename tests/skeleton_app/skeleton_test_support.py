"""Helpers of the skeleton app tests: run the web app as a real subprocess, make HTTP requests,
wait for conditions."""

from __future__ import annotations

import http.client
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from process_support import REPO_ROOT, LoggedProcess, free_port, wait_for

__all__ = ["REPO_ROOT", "SKELETON_DIR", "WebAppProcess", "free_port", "http_request",
           "port_open", "wait_for"]

SKELETON_DIR = REPO_ROOT / "skeleton_app"


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


class WebAppProcess(LoggedProcess):
    """``python skeleton_app/webapp.py --port P`` with its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        super().__init__(
            [sys.executable, str(SKELETON_DIR / "webapp.py"), "--port", str(self.port)],
            env, log_path)
        try:
            wait_for(lambda: self.process.poll() is not None or port_open(self.port),
                     timeout=60, what="the web app to listen")
        except AssertionError:
            self.stop()
            raise
        if self.process.poll() is not None:
            self.stop()
            raise AssertionError(f"web app exited early:\n{self.output()}")

    def request(self, method: str, path: str, body: bytes | str | None = None) -> Response:
        """An HTTP request to this web app."""
        return http_request(self.port, method, path, body)
