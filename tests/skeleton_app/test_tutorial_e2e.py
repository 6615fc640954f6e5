"""The skeleton tutorial (skeleton_app/README.md) end to end, as a newcomer runs it: everything
started by ``skeleton_app/run.sh start`` under supervisord; a model created with ``PUT``; a few
hundred points of a NAB series sent with ``POST``; ``GET`` until every row is scored;
``consume_realtime_results.py`` following the results exchange; and the MySQL rows compared
with what HTTP and AMQP showed. Then the CPU part of the tutorial: ``send_cpu.py`` and
``create_cpu_percent_model.py``."""

from __future__ import annotations

import ast
import calendar
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from process_support import listening_addresses
from skeleton_test_support import REPO_ROOT, SKELETON_DIR, http_request, wait_for

from skeleton_app import demo

pytestmark = pytest.mark.integration

NUM_POINTS = 400
POST_BATCH = 100
# Upper bound for the first scores: normally a few seconds, but the first model run after a
# change of htmengine/algorithms compiles the numba kernels (about 100 s of CPU).
SCORING_TIMEOUT = 420


def nab_points() -> list[tuple[float, int]]:
    """(value, epoch) of the first NUM_POINTS rows of the demo's default NAB series (../shared/nab)."""
    rows = demo.read_series(demo.DEFAULT_FILE, NUM_POINTS)
    assert len(rows) == NUM_POINTS
    return [(row.value, row.epoch) for row in rows]


def get_rows(port: int, metric: str) -> list[tuple[str, str, str]]:
    resp = http_request(port, "GET", f"/{metric}")
    assert resp.status == 200, resp.text
    assert resp.content_type.startswith("text/plain")
    rows = []
    for line in resp.text.splitlines():
        name, value, ts, score = line.split(" ")
        assert name == f"/{metric}"
        rows.append((value, ts, score))
    return rows


def parse_consumer_output(text: str, metric_id: str) -> tuple[dict[int, dict], list[str]]:
    """(results by rowid, defineModel model ids) printed by consume_realtime_results.py."""
    results: dict[int, dict] = {}
    defined = re.findall(r"^Handling `defineModel` for (\w+)$", text, flags=re.M)
    for line in text.splitlines():
        if line.startswith(f"{metric_id} ["):
            for item in ast.literal_eval(line[len(metric_id) + 1:]):
                results[item["rowid"]] = item
    return results, defined


def test_tutorial_put_post_get_consume_and_mysql_agree(skeleton_running, engine_env, sql_engine,
                                                      skeleton_bus):
    port = skeleton_running.webapp_port
    metric = f"load_average_{uuid.uuid4().hex[:8]}"
    points = nab_points()
    consumer_queue = f"{engine_env.prefix}.skeleton_results"
    consumer_log = skeleton_running.run_dir / "consume_realtime_results.out"
    with consumer_log.open("w") as out:
        consumer = subprocess.Popen(
            [sys.executable, str(SKELETON_DIR / "consume_realtime_results.py"),
             "--queue", consumer_queue], cwd=REPO_ROOT, env=skeleton_running.env,
            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: skeleton_bus.queue_exists(consumer_queue), timeout=30,
                 what="the consumer's queue")
        time.sleep(1.0)  # declare and bind are one round trip apart

        created = http_request(port, "PUT", f"/{metric}", '{"min": 0, "max": 120}')
        assert created.status == 201, created.text
        match = re.fullmatch(r"Created ([0-9a-f]{32})\n", created.text)
        assert match, created.text
        metric_id = match.group(1)

        for start in range(0, NUM_POINTS, POST_BATCH):
            batch = points[start:start + POST_BATCH]
            resp = http_request(port, "POST", f"/{metric}",
                                "".join(f"{value!r} {ts}\n" for value, ts in batch))
            assert resp.status == 200, resp.text
            assert resp.text == "".join(f"Saved /{metric} {value:f} @ {ts}\n"
                                        for value, ts in batch)

        def all_scored() -> list | None:
            rows = get_rows(port, metric)
            return rows if len(rows) == NUM_POINTS and all(s != "None" for _, _, s in rows) \
                else None

        http_rows = wait_for(all_scored, timeout=SCORING_TIMEOUT, interval=1.0,
                             what="all rows scored")

        def consumer_saw_all() -> tuple | None:
            parsed = parse_consumer_output(consumer_log.read_text(), metric_id)
            return parsed if len(parsed[0]) == NUM_POINTS and parsed[1] else None

        amqp_rows, defined = wait_for(consumer_saw_all, timeout=60, interval=0.5,
                                      what="the consumer to print every result")
    finally:
        consumer.terminate()
        code = consumer.wait(30)
        skeleton_bus.delete_queue(consumer_queue)
    assert code == 0, consumer_log.read_text()
    assert metric_id in defined
    batches = re.findall(rf"^Handling (\d+) model result\(s\) for {metric_id} - {metric}$",
                         consumer_log.read_text(), flags=re.M)
    assert sum(map(int, batches)) >= NUM_POINTS  # at-least-once: a batch may come twice

    with sql_engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM metric WHERE uid = :u"),
                              {"u": metric_id}).scalar_one()
        db_rows = conn.execute(sa.text(
            "SELECT rowid, timestamp, metric_value, raw_anomaly_score, anomaly_score, "
            "display_value FROM metric_data WHERE uid = :u ORDER BY rowid"),
            {"u": metric_id}).fetchall()
    assert status == 1  # ACTIVE
    assert [row.rowid for row in db_rows] == list(range(1, NUM_POINTS + 1))
    # MySQL holds exactly what was POSTed, in order
    epochs = [calendar.timegm(row.timestamp.timetuple()) for row in db_rows]
    assert [(row.metric_value, epoch) for row, epoch in zip(db_rows, epochs, strict=True)] == points
    for row, epoch, (value, ts, score) in zip(db_rows, epochs, http_rows, strict=True):
        # HTTP view: /<metric> <value> <ts> <anomaly_score>, time order
        assert (value, ts, score) == (str(row.metric_value), str(epoch),
                                      str(row.anomaly_score))
        # AMQP view: the results exchange carried the same numbers
        result = amqp_rows[row.rowid]
        assert (result["ts"], result["value"], result["rawAnomaly"], result["anomaly"]) == \
            (epoch, row.metric_value, row.raw_anomaly_score, row.anomaly_score)
        assert 0.0 <= row.raw_anomaly_score <= 1.0 and 0.0 <= row.anomaly_score <= 1.0
        assert row.display_value is not None


def test_tutorial_cpu_percent_scripts(skeleton_running, sql_engine, skeleton_bus):
    """The README's "Usage" section, word for word, with APPLICATION_CONFIG_PATH unset: send_cpu,
    create the model, scores in MySQL, then consume the results that keep coming."""
    assert "APPLICATION_CONFIG_PATH" not in skeleton_running.env
    sender_log = skeleton_running.run_dir / "send_cpu.out"
    with sender_log.open("w") as out:
        sender = subprocess.Popen(skeleton_running.argv("send_cpu.py", "--interval", "1"),
                                  cwd=REPO_ROOT, env=skeleton_running.env, stdout=out,
                                  stderr=subprocess.STDOUT)
    consumer = None
    try:
        wait_for(lambda: sender_log.read_text().count("Sent ") >= 2, timeout=60,
                 what="two samples sent")
        created = skeleton_running.script("create_cpu_percent_model.py")
        assert created.returncode == 0, created.stderr
        assert "APPLICATION_CONFIG_PATH is not set: using skeleton_app/conf" in created.stderr
        match = re.fullmatch(r"Model ([0-9a-f]{32}) created...\n", created.stdout)
        assert match, created.stdout
        metric_id = match.group(1)
        again = skeleton_running.script("create_cpu_percent_model.py")
        assert again.returncode == 1 and "already monitored" in again.stderr

        def scored_in_mysql() -> int:
            with sql_engine.connect() as conn:
                return conn.execute(sa.text(
                    "SELECT COUNT(*) FROM metric_data WHERE uid = :u AND anomaly_score IS NOT "
                    "NULL AND raw_anomaly_score IS NOT NULL"), {"u": metric_id}).scalar_one()

        wait_for(lambda: scored_in_mysql() >= 2, timeout=SCORING_TIMEOUT, interval=1.0,
                 what="cpu_percent rows scored in MySQL")
        # The consumer binds its queue now and prints the results of the samples that follow.
        consumer = skeleton_running.script("consume_realtime_results.py", "--max-messages", "1",
                                           "--idle-timeout", "60", timeout=120)
    finally:
        sender.terminate()
        sender.wait(30)
    assert consumer.returncode == 0, consumer.stderr
    assert re.search(rf"^Handling \d+ model result\(s\) for {metric_id} - cpu_percent$",
                     consumer.stdout, flags=re.M), consumer.stdout
    assert not skeleton_bus.queue_exists("skeleton_results")  # deleted on exit (--keep-queue)

    output = sender_log.read_text()
    assert output.startswith("APPLICATION_CONFIG_PATH is not set: using skeleton_app/conf")
    assert "Sending CPU percent samples to `cpu_percent`..." in output
    samples = re.findall(r"^Sent (\d+\.\d{6}) @ (\d+)$", output, flags=re.M)
    with sql_engine.connect() as conn:
        row = conn.execute(sa.text("SELECT uid, status, description FROM metric "
                                   "WHERE name = 'cpu_percent'")).one()
        stored = conn.execute(sa.text(
            "SELECT metric_value, timestamp FROM metric_data WHERE uid = :u ORDER BY rowid"),
            {"u": metric_id}).fetchall()
    assert (row.uid, row.status, row.description) == \
        (metric_id, 1, "Custom metric cpu_percent")
    common = min(len(stored), len(samples))
    assert common >= 2
    assert [(value, calendar.timegm(ts.timetuple())) for value, ts in stored[:common]] == \
        [(float(v), int(t)) for v, t in samples[:common]]


def test_supervisor_status_page_and_supervisorctl(skeleton_running):
    """The tutorial's supervisor status page, on 127.0.0.1 only, lists every program; and
    supervisorctl run in the application's conf folder reports them RUNNING."""
    port = skeleton_running.supervisor_port
    page = http_request(port, "GET", "/")
    assert page.status == 200
    for program in ("model_scheduler", "metric_listener", "metric_storer", "anomaly_service",
                    "webapp"):
        assert program in page.text
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, not all interfaces
    status = subprocess.run(
        [str(Path(sys.executable).parent / "supervisorctl"), "-s", f"http://127.0.0.1:{port}",
         "status", "htmengine:*", "skeleton:*"],  # not the off-by-default queue agent
        cwd=SKELETON_DIR / "conf", capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    assert len(re.findall(r" RUNNING ", status.stdout)) == 7, status.stdout
