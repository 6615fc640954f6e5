"""bench/faults.py runs end to end (a reference run and a kill -9 of the storer, on the MariaDB
server and RabbitMQ node it starts for itself) and prints its table and last line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.private_servers import available

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not available(), reason="needs mariadbd and rabbitmq-server")]


def test_faults_bench_prints_the_table_and_its_last_line() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "faults.py"), "--metrics", "1", "--rows", "160",
         "--faults", "kill9-storer", "--timeout", "180"],
        capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[:6] == ["fault", "sent", "stored", "scored", "twice", "lost"]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(rows) == {"reference", "kill9-storer"}
    for fields in rows.values():
        assert fields[1] == "160" and fields[8] == "yes"
    assert re.fullmatch(r"runs=2 metrics=1 rows=160 lost_except_listener=\d+ listener_lost=0 "
                        r"scored_twice=\d+ raw_unequal=\d+ unequal=\d+ recovered=\d/2",
                        lines[-1]), lines[-1]
