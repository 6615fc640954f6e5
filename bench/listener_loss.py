"""Measure what the metric listener loses when it is killed while a client streams graphite
plaintext at a steady rate: ``kill -9`` (the loss window: lines the client had sent but that
never reached the custom-metrics queue) and SIGTERM (which must lose nothing).

Each trial starts a listener on a free port with its own queue on the local RabbitMQ, streams
numbered lines (one ``send`` per line) for ``--seconds``, signals the listener, counts the lines
the client had sent before the signal and the lines in the queue, and deletes the queue.

    python bench/listener_loss.py [--rates 167,1000] [--trials 3] [--seconds 3]

Prints one line per trial and, per signal and rate, the worst loss in lines and in
milliseconds of traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from nta_utils.message_bus import MessageBus  # noqa: E402

QUEUE_ENV = "_NTA_UTILS_CONFIG__APPLICATION__METRIC_LISTENER__QUEUE_NAME"
PORT_ENV = "_NTA_UTILS_CONFIG__APPLICATION__METRIC_LISTENER__PLAINTEXT_PORT"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _count_lines(bus: MessageBus, queue: str) -> set[int]:
    seen: set[int] = set()
    while (message := bus.get(queue)) is not None:
        bus.ack(message.delivery_tag)
        seen.update(int(line.split()[1]) for line in json.loads(message.body)["data"])
    return seen


def trial(rate: float, seconds: float, signum: int) -> tuple[int, int]:
    """(lines sent before the signal, lines that reached the queue) of one trial."""
    queue = f"bench_loss_{uuid.uuid4().hex[:8]}.metric.custom.data"
    port = _free_port()
    env = {**os.environ, QUEUE_ENV: queue, PORT_ENV: str(port),
           "APPLICATION_CONFIG_PATH": os.environ.get("APPLICATION_CONFIG_PATH",
                                                     str(REPO_ROOT / "conf"))}
    listener = subprocess.Popen([sys.executable, "-m", "htmengine.runtime.metric_listener"],
                                env=env, cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    with MessageBus() as bus:
        bus.declare_queue(queue, durable=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            signalled = threading.Event()
            sentBefore = 0

            def client() -> None:
                nonlocal sentBefore
                start = time.monotonic()
                n = 0
                try:
                    while not signalled.is_set():
                        sock.sendall(f"bench.loss {n} {1430000000 + n}\n".encode())
                        n += 1
                        sentBefore = n
                        delay = start + n / rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                except OSError:
                    pass

            thread = threading.Thread(target=client)
            thread.start()
            time.sleep(seconds)
            signalled.set()
            thread.join()
            listener.send_signal(signum)
            listener.wait(60)
            sock.close()
            time.sleep(0.5)
            received = len(_count_lines(bus, queue))
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()
            bus.delete_queue(queue)
    return sentBefore, received


def main(argv: list[str] | None = None) -> int:
    """Run the trials and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="167,1000", help="lines per second, comma separated")
    parser.add_argument("--trials", type=int, default=3, help="trials per signal and rate")
    parser.add_argument("--seconds", type=float, default=3.0, help="streaming time per trial")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    runs = [(name, signum, rate) for name, signum in (("kill -9", signal.SIGKILL),
                                                      ("SIGTERM", signal.SIGTERM))
            for rate in rates]
    with tqdm(total=len(runs) * args.trials, desc="trials", file=sys.stderr) as progress:
        for name, signum, rate in runs:
            losses = []
            for _ in range(args.trials):
                sent, received = trial(rate, args.seconds, signum)
                losses.append(sent - received)
                progress.update(1)
                tqdm.write(f"{name} rate={rate:g}/s sent={sent} in_queue={received} "
                           f"lost={sent - received}")
            worst = max(losses)
            print(f"{name} rate={rate:g} lines/s trials={args.trials} worst_lost={worst} lines "
                  f"= {1000 * worst / rate:.0f} ms of traffic", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
