"""Hostile requests to the real skeleton web app (issue 12): deep JSON, oversized bodies sent
with a length or chunked, bodies shorter than their Content-Length, values the model cannot
encode, far-future timestamps, over-long lines and hundreds of concurrent clients."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest
from skeleton_test_support import http_request

from htmengine.runtime.metric_listener import MAX_LINE_BYTES

pytestmark = pytest.mark.integration

TS = 1434229721
MAX_BODY_BYTES = 16 * 1024 * 1024


def _name() -> str:
    return f"skeleton.hostile.{uuid.uuid4().hex[:10]}"


def _raw(port: int, head: bytes, body_parts: list[bytes], timeout: float = 30.0,
         pause_after: float = 0.0) -> bytes:
    """Send a raw HTTP request (headers, then the body parts) and read the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server answered early and closed
        if pause_after:
            time.sleep(pause_after)
        response = b""
        try:
            while chunk := sock.recv(65536):
                response += chunk
        except ConnectionResetError:
            pass
    return response


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_deeply_nested_json_in_a_put_is_400(webapp):
    resp = webapp.request("PUT", f"/{_name()}", "[" * 100000 + "]" * 100000)
    assert resp.status == 400, resp.text
    assert "deeper than the limit of 8" in resp.text
    assert "Traceback" not in webapp.output()


def test_chunked_body_over_the_limit_is_413(webapp):
    head = (f"POST /{_name()} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"Connection: close\r\n\r\n").encode()
    chunk = b"1.0 1434229721\n" * 65536   # ~1 MB
    parts = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 20 + [b"0\r\n\r\n"]
    response = _raw(webapp.port, head, parts)
    assert _status(response) == 413, response[:300]
    assert b"larger than the limit" in response
    assert "Traceback" not in webapp.output()


def test_content_length_over_the_limit_is_413(webapp):
    head = (f"POST /{_name()} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n"
            f"Connection: close\r\n\r\n").encode()
    assert _status(_raw(webapp.port, head, [b"1.0 1434229721\n"])) == 413


def test_body_shorter_than_its_content_length_is_400_after_the_timeout(webapp):
    head = (f"POST /{_name()} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            f"Connection: close\r\n\r\n").encode()
    started = time.monotonic()
    response = _raw(webapp.port, head, [b"1.0 1434229721\n"])
    elapsed = time.monotonic() - started
    assert _status(response) == 400, response[:300]
    assert b"shorter than its Content-Length" in response
    assert elapsed < 9, elapsed
    assert "Traceback" not in webapp.output()


@pytest.mark.parametrize("line, expected", [
    ("1.7976931348623157e308 1434229800", "outside the range the model can encode"),
    ("99 4102444800", "ahead of the receiver's clock"),
    ("1" * (MAX_LINE_BYTES + 1) + " 1434229800", f"longer than {MAX_LINE_BYTES} bytes"),
])
def test_unacceptable_samples_are_400_and_nothing_is_published(webapp, skeleton_bus,
                                                               custom_metrics_queue, line,
                                                               expected):
    resp = webapp.request("POST", f"/{_name()}", f"1.0 {TS}\n{line}\n")
    assert resp.status == 400, resp.text
    assert expected in resp.text
    assert skeleton_bus.message_count(custom_metrics_queue) == 0


def test_hundreds_of_concurrent_clients_are_served(webapp):
    clients = 300
    barrier = threading.Barrier(clients)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            barrier.wait(30)
            statuses.append(http_request(webapp.port, "GET", f"/{_name()}", timeout=60).status)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert statuses == [404] * clients
