"""The dashboard in headless Chromium against the live engine: the overview lists every metric
with its state, a NAB series with known anomalies is charted with marks inside its labelled
windows, and monitor/unmonitor/delete clicked on the page reach MySQL."""

from __future__ import annotations

import calendar
import json
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import LiveEngine, post_samples, samples, wait_scored, wait_status
from dashboard_support import DashboardPage

from skeleton_app import demo

pytestmark = pytest.mark.integration

NAB_KEY = "realKnownCause/ec2_request_latency_system_failure.csv"
NAB_CHUNK = 800
MARK_THRESHOLD = 0.99


def _metric_row(sql_engine: sa.Engine, name: str) -> sa.Row[Any] | None:
    with sql_engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT uid, status, model_params, "
            "(SELECT COUNT(*) FROM metric_data d WHERE d.uid = m.uid) AS stored, "
            "(SELECT COUNT(*) FROM metric_data d WHERE d.uid = m.uid "
            " AND d.raw_anomaly_score IS NOT NULL) AS scored "
            "FROM metric m WHERE name = :name"), {"name": name}).first()


def _rows_of_uid(sql_engine: sa.Engine, uid: str) -> int:
    with sql_engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM metric_data WHERE uid = :uid"),
                                {"uid": uid}).scalar_one())


def _overview_rows(dashboard: DashboardPage) -> dict[str, dict[str, str]]:
    return dashboard.page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('#overview tbody tr')].map((tr) => [tr.dataset.name, {
          status: tr.dataset.status,
          badge: tr.querySelector('.badge').textContent,
          reason: (tr.querySelector('.reason') || {textContent: ''}).textContent,
          spark: tr.querySelectorAll('svg.spark polyline').length}]))""")


def test_overview_lists_metrics_with_states(live: LiveEngine, dashboard: DashboardPage) -> None:
    """Metrics in three states appear with their badge and (when not active) their reason;
    the filter narrows the table; a metric created later appears by auto-refresh."""
    post_samples(live, "dash.unmonitored", samples(0, range(20)))
    assert live.request("PUT", "/api/v1/metrics/dash.pending/model").status_code == 201
    post_samples(live, "dash.pending", samples(1, range(10)))
    assert live.request("PUT", "/api/v1/metrics/dash.active/model",
                        json={"min": 0, "max": 100}).status_code == 201
    post_samples(live, "dash.active", samples(2, range(30)))
    wait_scored(live, "dash.active", 30)

    dashboard.open()
    dashboard.page.wait_for_selector('#overview tr[data-name="dash.active"]')
    dashboard.page.wait_for_function("+document.body.dataset.sparkLoads >= 1")
    rows = _overview_rows(dashboard)
    expected = {"dash.unmonitored": "UNMONITORED", "dash.pending": "PENDING_DATA",
                "dash.active": "ACTIVE"}
    for name, status in expected.items():
        assert rows[name]["status"] == status == rows[name]["badge"], rows[name]
        assert rows[name]["status"] == live.metric(name)["status"]
        assert rows[name]["spark"] == 1, f"{name} has no sparkline"
    assert rows["dash.unmonitored"]["reason"] == live.metric("dash.unmonitored")["reason"]
    assert rows["dash.pending"]["reason"].startswith("Waiting for data"), rows["dash.pending"]
    assert rows["dash.active"]["reason"] == ""
    dashboard.shot("overview")

    dashboard.page.fill("#filter", "dash.pend")
    assert list(_overview_rows(dashboard)) == ["dash.pending"]
    assert dashboard.page.inner_text("#overview-count").startswith("1 of ")
    dashboard.page.fill("#filter", "")

    loads = int(dashboard.page.get_attribute("body", "data-overview-loads") or 0)
    post_samples(live, "dash.later", samples(3, range(5)))
    dashboard.page.wait_for_function(f"+document.body.dataset.overviewLoads > {loads}",
                                     timeout=20000)
    assert _overview_rows(dashboard)["dash.later"]["status"] == "UNMONITORED"


def _nab_windows() -> tuple[list[demo.Row], list[tuple[int, int]]]:
    data_file = demo.NAB_DIR / "data" / NAB_KEY
    if not data_file.is_file():
        pytest.skip(f"the NAB corpus is not at {demo.NAB_DIR} (../shared/nab)")
    windows = demo.load_windows(demo.NAB_DIR / "labels" / "combined_windows.json", NAB_KEY)
    assert windows, f"no labelled windows for {NAB_KEY}"
    return demo.read_series(data_file), [
        (calendar.timegm(start.timetuple()), calendar.timegm(end.timetuple()))
        for start, end in windows]


def test_nab_metric_monitored_from_page_charts_marks_in_window(
        live: LiveEngine, dashboard: DashboardPage, sql_engine: sa.Engine) -> None:
    """A NAB series with known anomalies, monitored with min and max typed on its page,
    is charted with marks, and marks fall inside NAB's labelled windows."""
    rows, windows = _nab_windows()
    name = "dash.nab.ec2_latency"
    for start in range(0, len(rows), NAB_CHUNK):
        post_samples(live, name, [{"timestamp": r.epoch, "value": r.value}
                                  for r in rows[start:start + NAB_CHUNK]])
    low, high = demo.model_range(rows)

    dashboard.open(f"#/metric/{name}")
    page = dashboard.page
    page.wait_for_selector("body[data-chart-ready='1']")
    assert page.inner_text("#metric-badge") == "UNMONITORED"
    page.fill("#model-min", repr(low))
    page.fill("#model-max", repr(high))
    page.click("#monitor")
    page.wait_for_function("document.querySelector('#metric-badge').textContent === 'ACTIVE'")
    stored = _metric_row(sql_engine, name)
    assert stored is not None and stored.status == 1, stored
    recorded = json.loads(stored.model_params)["modelRange"]
    assert (recorded["min"], recorded["max"]) == pytest.approx((low, high)), recorded

    wait_scored(live, name, len(rows), timeout=600)
    page.reload()
    page.wait_for_selector("body[data-chart-ready='1']")
    page.fill("#threshold", str(MARK_THRESHOLD))
    page.dispatch_event("#threshold", "change")
    page.wait_for_function(f"document.querySelector('#marks-title').textContent"
                           f".includes('{MARK_THRESHOLD}')")
    marks = [int(ts) for ts in page.eval_on_selector_all(
        "#marks li", "items => items.map((li) => li.dataset.ts)")]
    above = live.get(f"/api/v1/metrics/{name}/data",
                     params={"minAnomaly": MARK_THRESHOLD, "limit": 100000}).json()["rows"]
    assert len(marks) == len(above) > 0, (len(marks), len(above))
    inside = [ts for ts in marks if any(start <= ts <= end for start, end in windows)]
    assert inside, f"no mark inside the labelled windows {windows}: {marks}"
    chart = page.evaluate("""() => ({series: dashboard.chart.series.length,
        points: dashboard.chart.data[0].length,
        marked: dashboard.chart.data[3].filter((v) => v !== null).length})""")
    assert chart == {"series": 5, "points": len(rows), "marked": len(marks)}
    dashboard.shot("nab_metric_chart")

    page.check("#show-raw")
    assert page.evaluate("dashboard.chart.series[4].show") is True
    first_window = windows[0]
    page.evaluate(f"dashboard.chart.setScale('x', {{min: {first_window[0] - 43200}, "
                  f"max: {first_window[1] + 43200}}})")
    dashboard.shot("nab_metric_zoomed_window_raw")
    page.click("#range-picker [data-range='day']")
    page.wait_for_function(f"dashboard.series.t.length < {len(rows)}")
    span = page.evaluate("dashboard.series.t[dashboard.series.t.length - 1] - dashboard.series.t[0]")
    assert 0 < span <= 86400


def test_unmonitor_and_delete_from_page_reach_mysql(
        live: LiveEngine, dashboard: DashboardPage, sql_engine: sa.Engine) -> None:
    """Stop monitoring and delete, confirmed in the browser, change MySQL; a dismissed
    confirmation changes nothing."""
    name = "dash.to_delete"
    assert live.request("PUT", f"/api/v1/metrics/{name}/model",
                        json={"min": 0, "max": 100}).status_code == 201
    post_samples(live, name, samples(4, range(40)))
    wait_scored(live, name, 40)
    page = dashboard.page
    dashboard.open(f"#/metric/{name}")
    page.wait_for_selector("body[data-chart-ready='1']")

    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#unmonitor")
    assert _metric_row(sql_engine, name).status == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#unmonitor")
    page.wait_for_function(
        "document.querySelector('#metric-badge').textContent === 'UNMONITORED'")
    after = _metric_row(sql_engine, name)
    assert (after.status, after.stored, after.scored) == (0, 40, 0), after
    dashboard.shot("unmonitored_metric")

    page.click("#monitor")
    wait_status(live, name, "PENDING_DATA", timeout=30)
    assert _metric_row(sql_engine, name).status == 8
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#unmonitor")
    page.wait_for_function(
        "document.querySelector('#metric-badge').textContent === 'UNMONITORED'")
    page.wait_for_selector("body[data-pending='0']")
    assert _metric_row(sql_engine, name).status == 0

    uid = after.uid
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_selector("#overview-view:not([hidden])")
    page.wait_for_function("document.body.dataset.overviewLoads >= 1")
    assert _metric_row(sql_engine, name) is None
    assert _rows_of_uid(sql_engine, uid) == 0
    assert page.locator(f'#overview tr[data-name="{name}"]').count() == 0
