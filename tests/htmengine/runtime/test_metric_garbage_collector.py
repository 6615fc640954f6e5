"""The metric garbage collector: its command line, and bench/metric_gc.py on a small table
(exactly the old rows deleted while concurrent one-row inserts go on, none waiting a second;
the million-row figure is the benchmark's, see README)."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from htmengine import repository
from htmengine.test_utils.repository_test_utils import HtmengineManagedTempRepository

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[3]
GC = "htmengine.runtime.metric_garbage_collector"


def _gc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", GC, *args], capture_output=True, text=True,
                          timeout=120)


def test_help_and_bad_arguments_do_not_act() -> None:
    done = _gc("--help")
    assert done.returncode == 0 and "--thresholdDays" in done.stdout
    for bad in (["--thresholdDays", "0"], ["--thresholdDays", "x"], []):
        done = _gc(*bad, "--once")
        assert done.returncode == 2 and "thresholdDays" in done.stderr, done.stderr


def test_once_from_the_command_line_deletes_only_old_rows(engine_env) -> None:
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with HtmengineManagedTempRepository("gc_cli"):
        engine = repository.engineFactory()
        with engine.connect() as conn:
            uid = repository.addMetric(conn, name="gc.cli", datasource="custom").uid
            repository.addMetricData(conn, uid, [(float(days), now - timedelta(days=days))
                                                 for days in (0, 9, 11, 30, 400)])
        done = _gc("--thresholdDays", "10", "--once", "--batchSize", "1")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "deleted 3 metric_data rows older than 10 days\n"
        with engine.connect() as conn:
            rows = repository.getMetricData(conn, uid).fetchall()
        assert [(row.rowid, row.metric_value) for row in rows] == [(1, 0.0), (2, 9.0)]


def test_bench_small_table_exact_and_inserts_never_wait_a_second(engine_env) -> None:
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "metric_gc.py"),
                           "--rows", "30000", "--metrics", "6", "--batch-size", "500"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"older_than_threshold=(\d+) deleted=\1 remaining=\d+ exact=yes",
                     done.stdout), done.stdout
    wait = float(re.search(r"max_insert_wait_s=([\d.]+)", done.stdout).group(1))
    assert wait < 1.0, done.stdout
