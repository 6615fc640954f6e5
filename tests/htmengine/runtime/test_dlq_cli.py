"""``htmengine dlq list / show / requeue`` as a real command on the session's RabbitMQ vhost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nta_utils.dead_letter import DeadLetterQueue, dead_letter_queue_name

pytestmark = pytest.mark.integration

HTMENGINE = str(Path(sys.executable).parent / "htmengine")


def _run(engine_env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HTMENGINE, "dlq", *args], env=engine_env.subprocess_env(),
                          capture_output=True, text=True, timeout=60)


def test_list_show_and_requeue_dead_letters(engine_env, bus, custom_queue) -> None:
    dlq = dead_letter_queue_name(custom_queue)
    bus.declare_queue(dlq, durable=True)
    bus.purge_queue(dlq)
    quarantine = DeadLetterQueue(bus, custom_queue)
    bodies = [b"[" * 50 + b"]" * 50, b"not json"]
    for body in bodies:
        bus.publish_to_queue(custom_queue, body)
        message = bus.get(custom_queue)
        quarantine.quarantine(message, f"reason for {body[:8]!r}")
        bus.ack(message.delivery_tag)

    listed = _run(engine_env, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"{dlq}: 2 dead letters"
    assert "reason for b'[[[[[[[['" in lines[1] and "reason for b'not json'" in lines[2]

    shown = _run(engine_env, "show", "2")
    assert shown.returncode == 0, shown.stderr
    assert f"from queue: {custom_queue}" in shown.stdout
    assert "body: b'not json'" in shown.stdout
    missing = _run(engine_env, "show", "9")
    assert missing.returncode == 1 and "no dead letter '9'" in missing.stderr
    assert _run(engine_env, "requeue").returncode == 2

    requeued = _run(engine_env, "requeue", "2")
    assert requeued.returncode == 0, requeued.stderr
    assert "requeued 1 dead letter" in requeued.stdout
    assert bus.message_count(dlq) == 1
    message = bus.get(custom_queue)
    assert message.body == b"not json"
    bus.ack(message.delivery_tag)
    assert _run(engine_env, "requeue", "--all").returncode == 0
    assert bus.message_count(dlq) == 0
    message = bus.get(custom_queue)
    assert message.body == bodies[0]
    bus.ack(message.delivery_tag)
