"""The ``htmengine`` console command against the real engine (started by ``run.sh start``, with
APPLICATION_CONFIG_PATH unset): send, metrics, monitor, tail, status, plot, unmonitor, delete,
send --csv with its progress bar, and --conf."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from skeleton_test_support import REPO_ROOT, SKELETON_DIR, wait_for

from nta_utils.config import Config
from skeleton_app import demo

pytestmark = pytest.mark.integration

HTMENGINE = str(Path(sys.executable).parent / "htmengine")
SCORING_TIMEOUT = 420
ROWS = 150


def run(skeleton_running, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**skeleton_running.env,
           "HTMENGINE_SUPERVISOR_URL": f"http://127.0.0.1:{skeleton_running.supervisor_port}"}
    return subprocess.run([HTMENGINE, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def nab_csv(path: Path, rows: int = ROWS) -> Path:
    lines = ["timestamp,value"] + [f"{row.timestamp:%Y-%m-%d %H:%M:%S},{row.value!r}"
                                   for row in demo.read_series(demo.DEFAULT_FILE, rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def scored(sql_engine, name: str) -> int:
    with sql_engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT COUNT(*) FROM metric m JOIN metric_data d ON d.uid = m.uid WHERE m.name = :n "
            "AND d.anomaly_score IS NOT NULL"), {"n": name}).scalar_one()


def test_monitor_send_csv_tail_status_plot_unmonitor_delete(skeleton_running, sql_engine,
                                                            tmp_path):
    name = f"cli.{uuid.uuid4().hex[:8]}"
    created = run(skeleton_running, "monitor", name, "--min", "0", "--max", "120")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("Model ") and created.stdout.strip().endswith(name)
    again = run(skeleton_running, "monitor", name, "--min", "0", "--max", "120")
    assert again.returncode == 1 and "already monitored" in again.stderr

    tail_out = tmp_path / "tail.out"
    with tail_out.open("w") as out:
        tail = subprocess.Popen([HTMENGINE, "tail", name, "--count", str(ROWS)], cwd=REPO_ROOT,
                                env=skeleton_running.env, stdout=out, stderr=subprocess.PIPE,
                                text=True)
    try:
        first = tail.stderr.readline()  # the one-line note about the configuration used
        assert first.startswith("APPLICATION_CONFIG_PATH is not set: using skeleton_app/conf")
        assert "following the results exchange" in tail.stderr.readline()
        sent = run(skeleton_running, "send", "--csv", str(nab_csv(tmp_path / "s.csv")),
                   "--metric", name)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == f"sent {ROWS} rows of {tmp_path / 's.csv'} to {name}"
        assert f"sending {name}: 100%" in sent.stderr and f"{ROWS}/{ROWS}" in sent.stderr
        assert tail.wait(SCORING_TIMEOUT) == 0
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    lines = tail_out.read_text().splitlines()
    assert len(lines) == ROWS
    assert lines[0].startswith(f"2014-04-10 00:04:00  {name}  row 1  value ")
    assert all(f"  {name}  row " in line and " likelihood " in line for line in lines)
    wait_for(lambda: scored(sql_engine, name) == ROWS, timeout=60, what="rows scored")

    listed = run(skeleton_running, "metrics")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name + " "))
    last = demo.read_series(demo.DEFAULT_FILE, ROWS)[-1].timestamp
    assert row.split()[1:5] == ["ACTIVE", str(ROWS), *f"{last:%Y-%m-%d %H:%M:%S}".split()]

    status = run(skeleton_running, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.count(" RUNNING ") == 7, status.stdout  # 4 engine, API, alerts, app
    assert "queues (messages waiting):" in status.stdout
    assert "ACTIVE" in status.stdout.split("metrics:")[1].splitlines()[0]

    png = tmp_path / "plot.png"
    plotted = run(skeleton_running, "plot", name, "-o", str(png), "--threshold", "0.5")
    assert plotted.returncode == 0, plotted.stderr
    assert plotted.stdout.startswith(f"wrote {png} ({ROWS} rows, ")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    unmonitored = run(skeleton_running, "unmonitor", name)
    assert unmonitored.returncode == 0, unmonitored.stderr
    listed = run(skeleton_running, "metrics").stdout
    assert next(line for line in listed.splitlines()
                if line.startswith(name + " ")).split()[1] == "UNMONITORED"
    status = run(skeleton_running, "status").stdout
    assert (f"  {name}: UNMONITORED ({ROWS} rows) - Not monitored: {ROWS} rows stored, no model. "
            f"Start one with htmengine monitor {name}") in status

    refused = run(skeleton_running, "delete", name)  # asks; no answer on stdin: aborts
    assert refused.returncode == 1 and "Aborted" in refused.stderr
    deleted = run(skeleton_running, "delete", name, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    with sql_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM metric WHERE name = :n"),
                            {"n": name}).scalar_one() == 0
    missing = run(skeleton_running, "delete", name, "--yes")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_send_single_samples_and_monitor_waiting_for_data(skeleton_running, sql_engine):
    name = f"cli.single.{uuid.uuid4().hex[:8]}"
    now = int(time.time())
    for offset, value in ((-10, "1.5"), (-5, "2.5")):
        sent = run(skeleton_running, "send", name, value, str(now + offset))
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith(f"sent {name} {value} @ ")
    sent = run(skeleton_running, "send", name, "3.5")  # timestamp: now
    assert sent.returncode == 0, sent.stderr

    def stored() -> int:
        with sql_engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT COUNT(*) FROM metric m JOIN metric_data d ON d.uid = m.uid "
                "WHERE m.name = :n"), {"n": name}).scalar_one()

    wait_for(lambda: stored() == 3, timeout=60, what="three samples stored")
    waiting = run(skeleton_running, "monitor", name)
    assert waiting.returncode == 0, waiting.stderr
    assert "waits for data" in waiting.stdout
    status = run(skeleton_running, "status").stdout
    assert (f"  {name}: PENDING_DATA (3 rows) - Waiting for data: needs 288 rows to infer its "
            "range: 3 so far") in status

    bad = run(skeleton_running, "send", name, "nan")
    assert bad.returncode == 1
    assert "Error: value 'nan' of sample" in bad.stderr and "not a finite number" in bad.stderr
    late = run(skeleton_running, "send", name, "1", "yesterday")
    assert late.returncode == 1 and "timestamp 'yesterday' is not" in late.stderr
    usage = run(skeleton_running, "monitor", name, "--min", "1")
    assert usage.returncode == 2 and "both --min and --max" in usage.stderr


def test_conf_option_names_the_configuration(skeleton_running, tmp_path):
    explicit = run(skeleton_running, "metrics", "--conf", str(SKELETON_DIR / "conf"))
    assert explicit.returncode == 0, explicit.stderr
    assert "APPLICATION_CONFIG_PATH is not set" not in explicit.stderr
    implicit = run(skeleton_running, "metrics")
    assert "APPLICATION_CONFIG_PATH is not set: using skeleton_app/conf" in implicit.stderr
    assert implicit.stdout == explicit.stdout
    bad = run(skeleton_running, "metrics", "--conf", str(tmp_path))
    assert bad.returncode == 2 and "has no application.conf" in bad.stderr


def test_logs_name_the_metric_once_per_batch_and_each_rejected_sample(skeleton_running,
                                                                      sql_engine):
    """Per live sample: one INFO line of the storer and one of the anomaly service, both naming
    the metric; the model scheduler's routine runs are DEBUG (only its periodic summary, at
    most one "last run, slot N: ..." line per slot every 10 s, is INFO); a rejected sample is
    logged once with metric, value, timestamp and reason."""
    name = f"cli.logs.{uuid.uuid4().hex[:8]}"
    assert run(skeleton_running, "monitor", name, "--min", "0", "--max", "10").returncode == 0
    start = int(time.time()) - 100
    for offset in range(3):
        assert run(skeleton_running, "send", name, "4.25", str(start + offset)).returncode == 0
        wait_for(lambda n=offset + 1: scored(sql_engine, name) == n, timeout=SCORING_TIMEOUT,
                 what=f"sample {offset + 1} scored")
    late = run(skeleton_running, "send", name, "7.5", str(start - 50))
    assert late.returncode == 0

    log_dir = skeleton_running.run_dir

    def lines(program: str, *needles: str) -> list[str]:
        return [line for line in (log_dir / f"{program}.log").read_text().splitlines()
                if all(needle in line for needle in needles)]

    wait_for(lambda: lines("metric_storer", "Rejected sample", name), timeout=60,
             what="the rejection logged")
    stored = lines("metric_storer", " INFO ", f"Stored {name} (1 row)")
    assert len(stored) == 3, stored
    scored_lines = lines("anomaly_service", " INFO ", f"Scored 1 row(s) of {name}")
    assert len(scored_lines) == 3, scored_lines
    rejected = lines("metric_storer", "Rejected sample", name)
    assert len(rejected) == 1, rejected
    assert " WARNING " in rejected[0] and "older than the previous one" in rejected[0]
    assert "value=7.5" in rejected[0] and f"({start - 50})" in rejected[0]
    assert lines("metric_storer", f"Stored {name} (0 rows)")
    per_run = [line for line in lines("model_scheduler", " INFO ", " drained ")
               if "last run, slot " not in line]
    assert not per_run, per_run


def test_missing_database_error_names_the_configuration_that_applies(skeleton_running):
    env = {**skeleton_running.env,
           Config.getEnvVarOverrideName("application.conf", "repository", "db"):
               f"missing_{uuid.uuid4().hex[:8]}"}
    result = subprocess.run([HTMENGINE, "metrics"], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "Unknown database" in result.stderr
    assert f"APPLICATION_CONFIG_PATH={SKELETON_DIR / 'conf'} python repository/migrate.py" \
        in result.stderr
