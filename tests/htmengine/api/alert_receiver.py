"""A local webhook receiver for the alert tests: answers 500, hangs past the sender's timeout,
or accepts (200), as the test switches it; records every request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedAlert:
    """One request the receiver saw."""

    key: str
    payload: dict[str, Any]
    mode: str
    at: float


@dataclass
class AlertReceiver:
    """``mode`` is "fail" (500), "hang" (sleep `hang_seconds`, then 200 to nobody) or "ok"."""

    mode: str = "ok"
    hang_seconds: float = 3.0
    requests: list[ReceivedAlert] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> int:
        """Serve on a free loopback port in a daemon thread; returns the port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                mode = receiver.mode
                with receiver._lock:
                    receiver.requests.append(ReceivedAlert(
                        self.headers.get("Idempotency-Key", ""), json.loads(body), mode,
                        time.time()))
                if mode == "hang":
                    time.sleep(receiver.hang_seconds)
                status = 500 if mode == "fail" else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:   # the sender gave up (timeout)
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self._server.server_address[1]

    def accepted(self) -> list[ReceivedAlert]:
        """Requests answered 200 in time (mode "ok")."""
        with self._lock:
            return [r for r in self.requests if r.mode == "ok"]

    def seen(self, mode: str) -> int:
        """Requests received in `mode`."""
        with self._lock:
            return sum(1 for r in self.requests if r.mode == mode)

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
