"""Samples and rows over real HTTP: per-sample verdicts (older, duplicate, not finite, bad
timestamp) with nothing accepted lost, rows in time order with since/until/limit/minAnomaly,
anomalies across metrics, and JSON errors (422 naming the input, 413 over the body limit)."""

from __future__ import annotations

import math
import re

import pytest
from api_support import LiveEngine, post_samples, samples, wait_scored
from supervised_support import T0

from htmengine.repository import engineFactory, queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_rejected_samples_are_reported_and_accepted_ones_stored(live: LiveEngine) -> None:
    name = "api.verdicts"
    post_samples(live, name, samples(0, range(10)))
    body = [
        {"timestamp": T0 + 300 * 10, "value": 1.5},                   # accepted
        {"timestamp": T0 + 300 * 3, "value": 2.0},                    # older
        {"timestamp": T0 + 300 * 10, "value": 3.0},                   # duplicate
        {"timestamp": "2015-04-26T01:50:00+01:00", "value": "NaN"},   # not finite
        {"timestamp": T0 + 300 * 11, "value": "Infinity"},            # not finite
        {"timestamp": "yesterday", "value": 1.0},                     # bad timestamp
        {"timestamp": "2015-04-26T00:00:00Z", "value": "12.25"},      # ISO, accepted
    ]
    answer = post_samples(live, name, body)
    verdicts = answer["samples"]
    assert (answer["accepted"], answer["rejected"]) == (2, 5)
    assert [v["accepted"] for v in verdicts] == [True, False, False, False, False, False, True]
    assert [v["rowid"] for v in verdicts if v["accepted"]] == [11, 12]
    assert verdicts[1]["reason"].startswith("older than the last stored sample (")
    assert verdicts[2]["reason"].startswith("duplicate: a sample at ")
    assert verdicts[3]["reason"] == "value 'NaN' is not a finite number"
    assert verdicts[4]["reason"] == "value 'Infinity' is not a finite number"
    assert "neither epoch seconds nor ISO 8601" in verdicts[5]["reason"]
    assert verdicts[6]["timestamp"] == "2015-04-26T00:00:00Z"
    assert verdicts[3]["timestamp"] == "2015-04-26T00:50:00Z"   # +01:00 turned into UTC
    with engineFactory().connect() as conn:
        uid = queries.getCustomMetricByName(conn, name).uid
        stored = [(r.rowid, r.metric_value) for r in queries.getMetricData(conn, uid)]
    assert stored[-2:] == [(11, 1.5), (12, 12.25)] and len(stored) == 12


def test_a_timestamp_outside_the_utc_years_is_rejected_not_a_server_error(
        live: LiveEngine) -> None:
    """Year 1 with a positive offset (year 9999 with a negative one) has no UTC time: the
    sample is rejected with a reason, the others of the body are stored (found by the fuzz
    run of the API's body handling; it was a 500)."""
    name = "api.utc_overflow"
    body = [{"timestamp": "0001-01-01T00:00:00+01:00", "value": 1.0},
            {"timestamp": "9999-12-31T23:59:59-05:00", "value": 2.0},
            {"timestamp": T0, "value": 3.0}]
    response = live.request("POST", f"/api/v1/metrics/{name}/data", json=body)
    assert response.status_code == 200, response.text
    verdicts = response.json()["samples"]
    assert [v["accepted"] for v in verdicts] == [False, False, True]
    assert "outside the years 1-9999 in UTC" in verdicts[0]["reason"]
    assert "outside the years 1-9999 in UTC" in verdicts[1]["reason"]


def test_rows_in_time_order_with_filters_and_anomalies(live: LiveEngine) -> None:
    name = "api.rows"
    assert live.request("PUT", f"/api/v1/metrics/{name}/model",
                        json={"min": 0, "max": 100}).status_code == 201
    post_samples(live, name, samples(1, range(400)))
    wait_scored(live, name, 400)
    rows = live.get(f"/api/v1/metrics/{name}/data", params={"limit": 100000}).json()["rows"]
    assert [r["rowid"] for r in rows] == list(range(1, 401))
    assert all(r["rawAnomalyScore"] is not None and r["anomalyLikelihood"] is not None
               and r["displayValue"] is not None for r in rows)
    assert rows[5]["value"] == samples(1, range(5, 6))[0]["value"]
    window = live.get(f"/api/v1/metrics/{name}/data",
                      params={"since": T0 + 300 * 10, "until": "2015-04-25T23:23:20",
                              "limit": 5}).json()["rows"]
    assert [r["rowid"] for r in window] == [11, 12, 13, 14, 15]
    cut = sorted(r["anomalyLikelihood"] for r in rows)[-10]
    high = live.get(f"/api/v1/metrics/{name}/data",
                    params={"minAnomaly": cut, "limit": 1000}).json()["rows"]
    assert [r["rowid"] for r in high] == [r["rowid"] for r in rows
                                          if r["anomalyLikelihood"] >= cut]
    anomalies = live.get("/api/v1/anomalies", params={"threshold": cut, "since": T0}).json()
    mine = [a for a in anomalies["anomalies"] if a["name"] == name]
    assert sorted(a["rowid"] for a in mine) == sorted(r["rowid"] for r in high)
    times = [a["timestamp"] for a in anomalies["anomalies"]]
    assert times == sorted(times, reverse=True)
    assert all(a["anomalyLikelihood"] >= cut for a in anomalies["anomalies"])
    later = live.get("/api/v1/anomalies", params={"threshold": cut,
                                                  "since": T0 + 300 * 401}).json()
    assert [a for a in later["anomalies"] if a["name"] == name] == []


def test_errors_are_json_naming_the_bad_input(live: LiveEngine) -> None:
    path = "/api/v1/metrics/api.errors/data"
    not_list = live.request("POST", path, json={"timestamp": 1, "value": 2})
    assert not_list.status_code == 422 and "body" in not_list.json()["error"]
    missing = live.request("POST", path, json=[{"timestamp": 1}])
    assert missing.status_code == 422 and "body.0.value" in missing.json()["error"]
    broken = live.request("POST", path, content=b"[{", headers={"content-type":
                                                              "application/json"})
    assert broken.status_code == 422 and broken.json()["status"] == 422
    empty = live.request("POST", path, json=[])
    assert empty.status_code == 422 and "non-empty" in empty.json()["error"]
    bad_since = live.get("/api/v1/anomalies", params={"since": "soon"})
    assert bad_since.status_code == 422 and "since" in bad_since.json()["error"]
    bad_range = live.request("PUT", "/api/v1/metrics/api.errors/model", json={"min": 5})
    assert bad_range.status_code == 422 and "api.errors" in bad_range.json()["error"]
    unknown_key = live.request("PUT", "/api/v1/metrics/api.errors/model", json={"mn": 5})
    assert unknown_key.status_code == 422 and "mn" in unknown_key.json()["error"]
    big = [{"timestamp": T0 + i, "value": math.pi} for i in range(8000)]
    too_large = live.request("POST", path, json=big)
    assert too_large.status_code == 413
    assert "larger than the limit of 200000 bytes" in too_large.json()["error"]

    def chunks():
        yield b"["
        for i in range(8000):
            yield (b"," if i else b"") + b'{"timestamp": %d, "value": 1}' % (T0 + i)
        yield b"]"

    chunked = live.request("POST", path, content=chunks(),
                           headers={"content-type": "application/json"})
    assert chunked.status_code == 413, chunked.text
    assert live.get("/api/v1/metrics/api.errors").status_code == 404
    assert live.request("PATCH", "/api/v1/metrics").status_code == 405
    docs = live.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "cdn" not in docs.text.lower()   # works without internet access
    scripts = re.findall(r'src="([^"]+\.js)"', docs.text)
    assert scripts and all(live.get(src).status_code == 200 for src in scripts), scripts
    spec = live.get("/openapi.json").json()
    assert {"/api/v1/metrics", "/api/v1/metrics/{name}", "/api/v1/metrics/{name}/model",
            "/api/v1/metrics/{name}/data", "/api/v1/anomalies", "/api/v1/health",
            "/metrics"} <= set(spec["paths"])
    assert live.get("/").headers["content-type"].startswith("text/html")  # the dashboard
