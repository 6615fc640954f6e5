"""The dashboard's own HTTP surface on the live engine: the page and its files, the overview
and sparkline reads (reason, last-day buckets) and the series read (range, limit, errors)."""

from __future__ import annotations

import statistics

import pytest
from api_support import LiveEngine, post_samples, samples
from supervised_support import T0, sampleValue

pytestmark = pytest.mark.integration

ROWS = 400


def test_page_and_static_files_are_served(live: LiveEngine) -> None:
    """`/` is the page; its script, style and uPlot come from /static, nothing from elsewhere."""
    page = live.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sources = ["/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.min.css",
               "/static/dashboard.js", "/static/dashboard.css"]
    for source in sources:
        assert f'"{source}"' in page.text
        assert live.get(source).status_code == 200, source
    assert "http://" not in page.text.replace("http://127.0.0.1", "")
    assert "https://" not in page.text
    assert live.get("/static/missing.js").status_code == 404


def test_overview_and_series_reads(live: LiveEngine) -> None:
    """The overview gives each metric its reason, the sparklines its last day in 30-minute
    buckets (mean value, newest timestamp); the series gives rows as columns within since/until."""
    name = "dash.api.reads"
    post_samples(live, name, samples(7, range(ROWS)))
    overview = live.get("/api/v1/dashboard/overview").json()
    entry = next(m for m in overview["metrics"] if m["name"] == name)
    assert entry["status"] == "UNMONITORED"
    assert entry["reason"] == live.metric(name)["reason"]
    assert overview["total"] == len(overview["metrics"])
    spark = live.get("/api/v1/dashboard/sparklines").json()["lines"][entry["uid"]]
    assert len(spark["v"]) == 48 and None not in spark["v"]
    for bucket in (0, 47):  # oldest and newest half hour: 6 rows each, 5 significant digits
        newest = ROWS - 1 - 6 * (47 - bucket)
        assert spark["v"][bucket] == pytest.approx(statistics.fmean(
            sampleValue(7, row) for row in range(newest - 5, newest + 1)), rel=1e-4)
    assert spark["a"] == [None] * 48
    post_samples(live, name, samples(8, range(ROWS, ROWS + 6)))  # another half hour
    moved = live.get("/api/v1/dashboard/sparklines").json()["lines"][entry["uid"]]
    assert moved["v"][:-1] == spark["v"][1:]
    assert moved["v"][-1] == pytest.approx(statistics.fmean(
        sampleValue(8, row) for row in range(ROWS, ROWS + 6)), rel=1e-4)

    series = live.get(f"/api/v1/dashboard/series/{name}",
                      params={"since": T0 + 300 * 10, "until": T0 + 300 * 19}).json()
    assert series["t"] == [T0 + 300 * row for row in range(10, 20)]
    assert series["v"] == pytest.approx([sampleValue(7, row) for row in range(10, 20)])
    assert series["lik"] == series["raw"] == [None] * 10 and not series["truncated"]
    assert 0 < series["threshold"] <= 1
    cut = live.get(f"/api/v1/dashboard/series/{name}", params={"limit": 5}).json()
    assert cut["truncated"] and cut["t"] == [T0 + 300 * row for row in range(5)]
    whole = live.get(f"/api/v1/dashboard/series/{name}").json()
    assert len(whole["t"]) == ROWS + 6 and not whole["truncated"]

    backwards = live.get(f"/api/v1/dashboard/series/{name}", params={"since": 10, "until": 5})
    assert backwards.status_code == 422 and "since" in backwards.json()["error"]
    unknown = live.get("/api/v1/dashboard/series/dash.api.nothing")
    assert unknown.status_code == 404 and "dash.api.nothing" in unknown.json()["error"]
