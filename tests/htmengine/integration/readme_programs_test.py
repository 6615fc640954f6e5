"""Acceptance tests: the original HTM Engine README's four programs ("Sending data",
"Creating a model", "Post-processing the results", "Real-time results"; files in
readme_programs/, changed only for `nta_utils` and print()) run as scripts against the engine
under supervisord (conftest.py) and do what the README says."""

from __future__ import annotations

import calendar
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from htmengine import repository
from htmengine.exceptions import ObjectNotFoundError
from htmengine.repository import schema
from htmengine.repository.queries import MetricStatus
from nta_utils.message_bus import MessageBus

pytestmark = [pytest.mark.integration]

PROGRAMS = Path(__file__).resolve().parent / "readme_programs"
RUNNER = PROGRAMS / "run_readme_program.py"
METRIC_NAME = "foo.bar.stats"
SAMPLE_TS = 1443197361


def _run(program: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, str(RUNNER), str(PROGRAMS / program)],
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{program} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _waitFor(check, timeout: float, what: str):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _metric():  # noqa: ANN202
    with repository.engineFactory().connect() as conn:
        try:
            return repository.getCustomMetricByName(conn, METRIC_NAME)
        except ObjectNotFoundError:
            return None


def _scoredRows(uid: str) -> list:
    with repository.engineFactory().connect() as conn:
        rows = repository.getMetricData(conn, metricId=uid,
                                        sort=schema.metric_data.c.rowid.asc()).fetchall()
    return rows if rows and all(r.anomaly_score is not None for r in rows) else []


def test_readme_programs_send_model_and_read_results(tmp_path: Path) -> None:
    consumerOut = tmp_path / "realtime_results.out"
    with consumerOut.open("w") as out:
        consumer = subprocess.Popen([sys.executable, str(RUNNER),
                                     str(PROGRAMS / "realtime_results.py")],
                                    stdout=out, stderr=subprocess.STDOUT)
    try:
        with MessageBus() as bus:
            _waitFor(lambda: bus.queue_exists("APPLICATION_NAME_results"), 60,
                     "the real-time program's queue")
        time.sleep(1.0)   # its bind follows the declare

        assert _run("sending_data.py") == ""
        metric = _waitFor(_metric, 60, f"metric {METRIC_NAME} created by the metric storer")

        assert _run("creating_a_model.py") == ""
        rows = _waitFor(lambda: _scoredRows(metric.uid), 120, "the sample to be scored")
        assert [(r.rowid, r.metric_value, r.timestamp) for r in rows] == [
            (1, 21.0, datetime.utcfromtimestamp(SAMPLE_TS))]
        assert _metric().status == MetricStatus.ACTIVE

        printed = _run("post_processing_results.py")
        assert printed == f"{METRIC_NAME} 21.0 {SAMPLE_TS} {rows[0].anomaly_score}\n"
        assert calendar.timegm(rows[0].timestamp.timetuple()) == SAMPLE_TS

        def consumerSawAll() -> str | None:
            text = consumerOut.read_text()
            return text if (f"Handling `defineModel` for {metric.uid}" in text and
                            f"Handling 1 model result(s) for {metric.uid} - {METRIC_NAME}"
                            in text) else None

        text = _waitFor(consumerSawAll, 60, "the real-time program to print the results")
        match = re.search(rf"^{metric.uid} (\[.*\])$", text, flags=re.M)
        assert match, text
        assert f"'rowid': 1, 'ts': {SAMPLE_TS}, 'value': 21.0" in match.group(1)
        assert consumer.poll() is None, text   # still consuming
    finally:
        consumer.terminate()
        consumer.wait(30)
        with MessageBus() as bus:
            bus.delete_queue("APPLICATION_NAME_results")
    assert os.path.getsize(consumerOut) > 0
