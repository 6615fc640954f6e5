"""The metric listener as a real subprocess: graphite plaintext over real TCP (several
concurrent connections) and UDP sockets, messages checked on the real RabbitMQ queue."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from runtime_test_support import wait_for

from htmengine.runtime.metric_listener import MAX_BATCH_SIZE, MAX_LINE_BYTES

pytestmark = pytest.mark.integration


def _drain(bus, queue: str) -> list[dict]:
    messages = []
    while (message := bus.get(queue)) is not None:
        bus.ack(message.delivery_tag)
        messages.append(json.loads(message.body))
    return messages


def _collect(bus, queue: str, expectedLines: int, timeout: float = 20.0) -> list[dict]:
    collected: list[dict] = []

    def enough() -> bool:
        collected.extend(_drain(bus, queue))
        return sum(len(m["data"]) for m in collected) >= expectedLines

    wait_for(enough, timeout, what=f"{expectedLines} lines on {queue}")
    time.sleep(0.3)
    collected.extend(_drain(bus, queue))
    return collected


@pytest.fixture()
def listener(engine_env, start_service, custom_queue, bus):
    service = start_service("htmengine.runtime.metric_listener", "--udp")
    port = engine_env.plaintext_port

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            assert service.process.poll() is None, service.output()
            return False

    wait_for(listening, 30, what="the listener port")
    time.sleep(0.2)
    _drain(bus, custom_queue)   # the probe connection sent nothing, but be sure
    return service


def test_concurrent_tcp_connections_batch_lines_in_order(listener, engine_env, bus,
                                                         custom_queue) -> None:
    numClients, linesPerClient = 5, 450
    barrier = threading.Barrier(numClients)
    sources: dict[int, str] = {}

    def client(index: int) -> None:
        lines = "".join(f"client{index}.metric {n} {1430000000 + 300 * n}\n"
                        for n in range(linesPerClient))
        with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
            sources[index] = "tcp:{}:{}".format(*sock.getsockname())
            barrier.wait()
            sock.sendall(lines.encode())

    threads = [threading.Thread(target=client, args=(i,)) for i in range(numClients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    messages = _collect(bus, custom_queue, numClients * linesPerClient)

    assert all(m["protocol"] == "plain" for m in messages)
    assert all(0 < len(m["data"]) <= MAX_BATCH_SIZE for m in messages)
    for index in range(numClients):
        mine = [m for m in messages if m["source"] == sources[index]]
        lines = [line for m in mine for line in m["data"]]
        # every line once, in the order sent; lines never mixed between connections
        assert lines == [f"client{index}.metric {n} {1430000000 + 300 * n}"
                         for n in range(linesPerClient)]
        assert len(mine) >= 3   # 450 lines cannot fit in fewer than 3 batches of 200
    assert sum(len(m["data"]) for m in messages) == numClients * linesPerClient


def test_partial_batch_flushed_on_pause_while_connection_stays_open(listener, engine_env, bus,
                                                                    custom_queue) -> None:
    with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
        sock.sendall(b"paused.metric 1 1430000000\npaused.metric 2 1430000300\n")
        first = _collect(bus, custom_queue, 2, timeout=10)
        assert [line for m in first for line in m["data"]] == [
            "paused.metric 1 1430000000", "paused.metric 2 1430000300"]
        # a line split across two sends is reassembled
        sock.sendall(b"paused.metric 3 14300")
        time.sleep(0.2)
        sock.sendall(b"00600\n")
        second = _collect(bus, custom_queue, 1, timeout=10)
    assert [line for m in second for line in m["data"]] == ["paused.metric 3 1430000600"]


def test_last_line_without_newline_is_sent_at_eof(listener, engine_env, bus,
                                                  custom_queue) -> None:
    with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
        sock.sendall(b"eof.metric 1 1430000000\n\n  \neof.metric 2 1430000300")
    messages = _collect(bus, custom_queue, 2)
    assert [line for m in messages for line in m["data"]] == [
        "eof.metric 1 1430000000", "eof.metric 2 1430000300"]


def test_overlong_line_is_dropped_and_the_stream_continues(listener, engine_env, bus,
                                                          custom_queue) -> None:
    with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
        sock.sendall(b"long.metric " + b"9" * (MAX_LINE_BYTES + 100))
        time.sleep(0.1)
        sock.sendall(b"9 1430000000\nlong.metric 1 1430000300\n")
    messages = _collect(bus, custom_queue, 1)
    assert [line for m in messages for line in m["data"]] == ["long.metric 1 1430000300"]
    assert "Dropping a line longer than" in listener.output()


def test_udp_datagrams_are_forwarded(listener, engine_env, bus, custom_queue) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for n in range(3):
            sock.sendto(f"udp.metric {n} {1430000000 + 300 * n}".encode(),
                        ("127.0.0.1", engine_env.plaintext_port))
    messages = _collect(bus, custom_queue, 3)
    assert sorted(line for m in messages for line in m["data"]) == [
        f"udp.metric {n} {1430000000 + 300 * n}" for n in range(3)]
    assert all(m["source"].startswith("udp:127.0.0.1:") for m in messages)


def test_sigterm_stops_the_listener_cleanly(listener) -> None:
    assert listener.stop() == 0
    assert "Listener stopped" in listener.output()


def test_every_overlong_line_is_dropped_even_within_one_read(listener, engine_env, bus,
                                                             custom_queue) -> None:
    big = b"big.metric " + b"9" * (MAX_LINE_BYTES + 10) + b" 1430000000\n"
    with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
        sock.sendall(b"big.metric 1 1430000000\n" + big + b"big.metric 2 1430000300\n")
    messages = _collect(bus, custom_queue, 2)
    assert [line for m in messages for line in m["data"]] == [
        "big.metric 1 1430000000", "big.metric 2 1430000300"]
    assert "Dropping a line longer than" in listener.output()


def test_invalid_samples_are_rejected_with_a_reason(listener, engine_env, bus,
                                                    custom_queue) -> None:
    now = int(time.time())
    with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
        sock.sendall(b"x.caf\xe9 1 1430000000\n"                     # latin-1, not UTF-8
                     b"x.caf\xc3\xa9 2 1430000000\n"                 # UTF-8: kept
                     b"huge.metric 1.7976931348623157e308 1430000000\n"
                     b"future.metric 99 4102444800\n"
                     + f"future.metric 5 {now}\n".encode())
    messages = _collect(bus, custom_queue, 2)
    assert [line for m in messages for line in m["data"]] == [
        "x.café 2 1430000000", f"future.metric 5 {now}"]
    output = listener.output()
    assert "is not valid UTF-8" in output
    assert "outside the range the model can encode" in output
    assert "ahead of the receiver's clock" in output
    assert output.count("Rejecting a line from tcp:127.0.0.1:") == 3


def test_sigterm_publishes_everything_sent_before_it(listener, engine_env, bus,
                                                     custom_queue) -> None:
    numLines = 30000
    payload = "".join(f"drain.metric {n} {1430000000 + 300 * n}\n" for n in range(numLines))
    with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
        sock.sendall(payload.encode())
        listener.process.send_signal(15)
        assert listener.process.wait(60) == 0
    messages = _collect(bus, custom_queue, numLines, timeout=10)
    lines = [line for m in messages for line in m["data"]]
    assert lines == [f"drain.metric {n} {1430000000 + 300 * n}" for n in range(numLines)]


def test_lines_of_a_sender_that_never_pauses_are_published_promptly(listener, engine_env, bus,
                                                                    custom_queue) -> None:
    """One line every 2 ms never leaves the 10 ms flush pause: the batch age limit publishes
    them anyway (before, nothing left the listener until 200 lines had been read)."""
    with socket.create_connection(("127.0.0.1", engine_env.plaintext_port)) as sock:
        for n in range(180):
            sock.sendall(f"steady.metric {n} {1430000000 + n}\n".encode())
            time.sleep(0.002)
        # still sending, no pause yet: all but the lines of the last ~50 ms are in the queue
        published = _drain(bus, custom_queue)
        assert sum(len(m["data"]) for m in published) >= 120
    rest = _collect(bus, custom_queue, 180 - sum(len(m["data"]) for m in published))
    lines = [line for m in published + rest for line in m["data"]]
    assert lines == [f"steady.metric {n} {1430000000 + n}" for n in range(180)]
