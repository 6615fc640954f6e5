"""Render times of the web dashboard in headless Chromium (Debian's, driven by playwright).

    python bench/dashboard_render.py [--metrics 1000] [--rows-per-metric 288]
                                     [--big-rows 20000] [--runs 5]

In a throw-away environment (own database and RabbitMQ virtual host, removed afterwards) the
bench stores ``--metrics`` active metrics with ``--rows-per-metric`` scored rows each (a day
at 5 minutes) and one metric, ``bench.big``, with ``--big-rows`` scored rows (synthetic
values and likelihoods, a few over the alert threshold), starts the API alone
(``python -m htmengine.api``) and opens the dashboard ``--runs`` times:

- overview: the page's own timings of fetching ``/api/v1/dashboard/overview`` and building
  the table of every metric (badges, reasons, last values), the wall time from navigation
  until the table is there, and the time until every sparkline
  (``/api/v1/dashboard/sparklines``) is drawn in it, on the first load (the API computes
  every sparkline) and on later ones (the API's cache is valid: no row changed);
- chart: the page's timings from asking for the metric and its rows (together,
  ``/api/v1/metrics/bench.big`` and ``/api/v1/dashboard/series/bench.big``) until uPlot has
  drawn them (value, likelihood, marks, raw score), uPlot's drawing alone, and the wall time
  from navigation until the chart is drawn.

Prints min/median/max in milliseconds; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from tqdm import tqdm

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_support import BenchEnvironment, freePort, override  # noqa: E402

START = datetime(2015, 1, 1)
STEP = timedelta(minutes=5)
BATCH = 10000


def _likelihood(metric: int, row: int) -> float:
    """Deterministic synthetic likelihood; one row in 500 is over 0.9999."""
    if (row * 7 + metric) % 500 == 0:
        return 0.99995
    return 0.5 + 0.45 * math.sin(row / 40.0 + metric)


def populate(metrics: int, rows_per_metric: int, big_rows: int) -> None:
    """Store the metrics and their scored rows through the repository."""
    from htmengine.repository import engineFactory, queries, schema
    from htmengine.repository.metric_status import MetricStatus

    engine = engineFactory()
    plan = [(f"bench.m{i:04d}", rows_per_metric) for i in range(metrics)]
    plan.append(("bench.big", big_rows))
    params = json.dumps({"modelRange": {"min": 0, "max": 200, "minResolution": 0.2}})
    pending: list[dict[str, object]] = []
    with engine.begin() as conn, tqdm(total=sum(n for _, n in plan), unit="row",
                                      desc="storing rows", file=sys.stderr) as bar:
        for index, (name, count) in enumerate(plan):
            uid = queries.addMetric(conn, name=name, datasource="custom",
                                    status=int(MetricStatus.ACTIVE), model_params=params,
                                    last_rowid=count).uid
            for row in range(count):
                value = 100 + 50 * math.sin(row / 30.0 + index) + (row % 7)
                likelihood = _likelihood(index, row)
                pending.append({"uid": uid, "rowid": row + 1, "timestamp": START + row * STEP,
                                "metric_value": value, "raw_anomaly_score": likelihood / 2,
                                "anomaly_score": likelihood, "display_value": 0})
                if len(pending) >= BATCH:
                    conn.execute(schema.metric_data.insert(), pending)
                    bar.update(len(pending))
                    pending = []
        if pending:
            conn.execute(schema.metric_data.insert(), pending)
            bar.update(len(pending))
    engine.dispose()


def start_api(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The API alone on `port`, answering the overview."""
    env = {**os.environ, override("application.conf", "api", "port"): str(port),
           override("application.conf", "api", "public_url"): f"http://127.0.0.1:{port}"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "htmengine.api"], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/dashboard/overview",
                         timeout=30).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.3)
    process.terminate()
    raise SystemExit(f"the API did not start on port {port}:\n{log.read_text()[-2000:]}")


def _summary(label: str, values: list[float]) -> str:
    return (f"{label}: min {min(values):.0f} ms, median {statistics.median(values):.0f} ms, "
            f"max {max(values):.0f} ms ({len(values)} runs)")


def measure(base_url: str, runs: int, metrics: int, big_rows: int) -> list[str]:
    """Open the overview and the big metric's chart `runs` times each; the printed lines."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed: scripts/ensure-services.sh chromium")
    figures: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for run in tqdm(range(runs), desc="overview and chart", file=sys.stderr):
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(f"{base_url}/#/")
            page.wait_for_function("+document.body.dataset.overviewLoads >= 1", timeout=60000)
            wall = (time.perf_counter() - started) * 1000
            page.wait_for_function("+document.body.dataset.sparkLoads >= 1", timeout=60000)
            timings = page.evaluate("dashboard.timings")
            rows = page.locator("#overview tbody tr").count()
            lines = page.locator("#overview svg.spark").count()
            assert lines == metrics + 1, f"the overview shows {lines} sparklines"
            assert rows == metrics + 1, f"the overview shows {rows} metrics"
            figures.setdefault("overview fetch+render", []).append(timings["overview"])
            figures.setdefault("overview render", []).append(timings["overviewRender"])
            figures.setdefault("overview wall (navigation to table)", []).append(wall)
            label = ("overview with sparklines, first load (API's cache empty)" if run == 0
                     else "overview with sparklines, later loads (cache valid)")
            figures.setdefault(label, []).append(timings["sparklines"])
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(f"{base_url}/#/metric/bench.big")
            page.wait_for_function("dashboard.timings.chart !== undefined", timeout=60000)
            wall = (time.perf_counter() - started) * 1000
            timings = page.evaluate("dashboard.timings")
            points = page.evaluate("dashboard.chart.data[0].length")
            assert points == big_rows, f"the chart shows {points} points"
            figures.setdefault("chart fetch+draw", []).append(timings["chart"])
            figures.setdefault("chart draw", []).append(timings["chartRender"])
            figures.setdefault("chart wall (navigation to drawn)", []).append(wall)
        browser.close()
    return [_summary(f"{label} [{metrics} metrics]" if label.startswith("overview")
                     else f"{label} [{big_rows} rows]", values)
            for label, values in figures.items()]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, set up, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics", type=int, default=1000)
    parser.add_argument("--rows-per-metric", type=int, default=288)
    parser.add_argument("--big-rows", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with BenchEnvironment() as env:
        populate(args.metrics, args.rows_per_metric, args.big_rows)
        port = freePort()
        api = start_api(port, env.tmp / "api.log")
        try:
            lines = measure(f"http://127.0.0.1:{port}", args.runs, args.metrics, args.big_rows)
        finally:
            api.terminate()
            api.wait(60)
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
