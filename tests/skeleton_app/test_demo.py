"""The one-command demo (skeleton_app/demo.py): a short NAB series streamed through the graphite
port of the engine started by ``run.sh start``, scored, and reported; its input checks; and its
clear failure when the engine is not running."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from skeleton_test_support import REPO_ROOT, SKELETON_DIR, free_port

from skeleton_app import demo

NUM_ROWS = 300
# Upper bound: normally seconds, but the first model run after a change of htmengine/algorithms
# compiles the numba kernels (about 100 s of CPU).
DEMO_TIMEOUT = 420


@pytest.mark.integration
def test_demo_streams_a_nab_series_and_exits_when_every_row_is_scored(skeleton_running,
                                                                      sql_engine):
    metric = f"demo.test.{uuid.uuid4().hex[:8]}"
    run = skeleton_running.script("demo.py", "--limit", str(NUM_ROWS), "--metric", metric,
                                  "--threshold", "0.5", "--timeout", str(DEMO_TIMEOUT),
                                  timeout=DEMO_TIMEOUT + 60)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].endswith(f"ec2_cpu_utilization_825cc2.csv: {NUM_ROWS} rows from "
                             "2014-04-10 00:04:00 to 2014-04-11 01:04:00; "
                             "1 labelled anomaly window(s)")
    assert re.fullmatch(rf"model [0-9a-f]{{32}} created for {re.escape(metric)} "
                        rf"\(min [\d.]+, max [\d.]+\); sending {NUM_ROWS} rows to "
                        rf"127\.0\.0\.1:\d+", lines[1]), lines[1]
    assert "scored: 100%" in run.stderr and f"{NUM_ROWS}/{NUM_ROWS}" in run.stderr
    png = skeleton_running.run_dir / f"{metric}.png"
    assert f"plot: {png} (values with the " in run.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = re.search(rf"^done: {NUM_ROWS} rows scored in [\d.]+ s, (\d+) with anomaly "
                     rf"likelihood >= 0.5", run.stdout, flags=re.M)
    assert done, run.stdout
    anomalies = [line for line in lines if line.startswith("ANOMALY row")]
    assert len(anomalies) == int(done.group(1))

    with sql_engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT d.rowid, d.anomaly_score FROM metric m JOIN metric_data d ON d.uid = m.uid "
            "WHERE m.name = :n ORDER BY d.rowid"), {"n": metric}).fetchall()
    assert [r.rowid for r in rows] == list(range(1, NUM_ROWS + 1))
    assert all(r.anomaly_score is not None for r in rows)
    # exactly the rows at or above the threshold were reported
    flagged = {int(re.match(r"ANOMALY row +(\d+)", line).group(1)) for line in anomalies}
    assert flagged == {r.rowid for r in rows if r.anomaly_score >= 0.5}


@pytest.mark.integration
def test_demo_without_a_running_engine_says_so_and_creates_nothing(engine_env, migrated_db,
                                                                   sql_engine):
    metric = f"demo.test.{uuid.uuid4().hex[:8]}"
    env = {**engine_env.subprocess_env(),
           "APPLICATION_CONFIG_PATH": str(SKELETON_DIR / "conf"),
           "_NTA_UTILS_CONFIG__APPLICATION__METRIC_LISTENER__PLAINTEXT_PORT": str(free_port())}
    run = subprocess.run([sys.executable, str(SKELETON_DIR / "demo.py"), "--limit", "10",
                          "--metric", metric], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
    assert "cannot connect to the metric listener" in run.stderr
    assert "make run" in run.stderr
    with sql_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM metric WHERE name = :n"),
                            {"n": metric}).scalar() == 0


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_read_series_skips_rows_out_of_time_order(tmp_path, capsys):
    path = write_csv(tmp_path / "s.csv", "timestamp,value\n2014-04-10 00:04:00,1.5\n"
                     "2014-04-10 00:04:00,2\n2014-04-10 00:09:00,3\n2014-04-10 00:01:00,4\n")
    rows = demo.read_series(path)
    assert [(r.epoch, r.value) for r in rows] == [(1397088240, 1.5), (1397088540, 3.0)]
    assert capsys.readouterr().err.count("not later than the previous one") == 2


@pytest.mark.parametrize("text, expected", [
    ("time,val\n2014-04-10 00:04:00,1\n", "expected a 'timestamp,value' header"),
    ("timestamp,value\n2014-04-10 00:04:00,abc\n", ":2: value 'abc' is not a number"),
    ("timestamp,value\n2014-04-10 00:04:00,nan\n", ":2: value 'nan' is not finite"),
    ("timestamp,value\nyesterday,1\n", "timestamp 'yesterday'"),
    ("timestamp,value\n2014-04-10 00:04:00\n", ":2: expected 'timestamp,value'"),
    ("timestamp,value\n", "has no data rows"),
])
def test_read_series_rejects_bad_files_naming_the_line(tmp_path, text, expected):
    with pytest.raises(demo.DemoError, match=re.escape(expected)):
        demo.read_series(write_csv(tmp_path / "bad.csv", text))


def test_model_range_widens_the_series_range_by_20_percent():
    rows = [demo.Row(demo.datetime(2014, 1, 1, 0, i), v) for i, v in enumerate([10.0, 60.0])]
    assert demo.model_range(rows) == (0.0, 70.0)
    flat = [demo.Row(demo.datetime(2014, 1, 1), 5.0)]
    assert demo.model_range(flat) == pytest.approx((4.8, 6.2))
