"""The JSON API over real HTTP against the engine under supervisord: every metric state
reached for real with its `reason` (unmonitored, waiting for data with the row count, model
being created, error with its message, active with a backlog), the list with filter and
paging, monitor / unmonitor idempotence, delete removing data, input queue and checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from api_support import LiveEngine, post_samples, samples, wait_scored, wait_status
from process_support import wait_for

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.checkpoint_manager import ModelCheckpointMgr
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.repository import engineFactory, queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _queue_exists(uid: str) -> bool:
    with ModelSwapperInterface() as swapper:
        return swapper.bus.queue_exists(swapper.getModelInputQueueName(uid))


def test_unknown_metric_is_a_json_404(live: LiveEngine) -> None:
    for method, path in (("GET", "/api/v1/metrics/api.nope"),
                         ("GET", "/api/v1/metrics/api.nope/data"),
                         ("DELETE", "/api/v1/metrics/api.nope"),
                         ("DELETE", "/api/v1/metrics/api.nope/model")):
        response = live.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"error": "unknown metric 'api.nope'", "status": 404}


def test_unmonitored_then_pending_data_then_active(live: LiveEngine) -> None:
    name = "api.pending"
    answer = post_samples(live, name, samples(0, range(120)))
    assert (answer["accepted"], answer["rejected"]) == (120, 0)
    assert [s["rowid"] for s in answer["samples"]] == list(range(1, 121))
    detail = live.metric(name)
    assert (detail["status"], detail["statusCode"], detail["rowsStored"]) == ("UNMONITORED", 0,
                                                                             120)
    assert detail["reason"] == (
        "Not monitored: 120 rows stored, no model. Start one with "
        "PUT /api/v1/metrics/api.pending/model (optionally with min and max).")
    assert detail["lastValue"] == samples(0, range(119, 120))[0]["value"]
    assert detail["lastTimestamp"] == datetime.fromtimestamp(
        samples(0, range(119, 120))[0]["timestamp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    started = live.request("PUT", f"/api/v1/metrics/{name}/model")
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "PENDING_DATA" and started.json()["created"] is True
    assert started.json()["reason"].startswith(
        "Waiting for data: needs 288 rows to infer its range: 120 so far (168 to go).")
    again = live.request("PUT", f"/api/v1/metrics/{name}/model", json={})
    assert (again.status_code, again.json()["created"]) == (200, False)

    post_samples(live, name, samples(0, range(120, 300)))
    detail = wait_scored(live, name, 300)
    assert detail["status"] == "ACTIVE"
    assert detail["modelRange"]["min"] < 20 and detail["modelRange"]["max"] > 64
    detail = wait_for(lambda: (d := live.metric(name))["rowsWaiting"] == 0 and d, 60)
    assert detail["reason"] == ("Active: 300 rows scored, 0 rows waiting to be scored, "
                                "0 input batches queued for the model.")
    assert detail["lastAnomalyLikelihood"] is not None


def test_create_pending_then_active_with_a_backlog(live: LiveEngine) -> None:
    name = "api.backlog"
    with live.supervised.frozen("model_scheduler", withSlots=True):
        started = live.request("PUT", f"/api/v1/metrics/{name}/model",
                               json={"min": 0, "max": 100})
        assert started.status_code == 201, started.text
        detail = live.metric(name)
        assert detail["status"] == "CREATE_PENDING"
        assert detail["modelRange"] == {"min": 0.0, "max": 100.0, "minResolution": None}
        assert detail["reason"].startswith("Model being created since ")
        assert "UTC (" in detail["reason"] and "s ago): the model scheduler has not " \
            "confirmed it yet; 0 rows wait to be scored." in detail["reason"]
    wait_status(live, name, "ACTIVE")
    post_samples(live, name, samples(1, range(10)))
    wait_scored(live, name, 10)
    with live.supervised.frozen("model_scheduler", withSlots=True):
        post_samples(live, name, samples(1, range(10, 60)))
        detail = live.metric(name)
        assert (detail["status"], detail["rowsStored"], detail["rowsScored"],
                detail["rowsWaiting"]) == ("ACTIVE", 60, 10, 50)
        assert detail["inputQueueDepth"] >= 1
        assert detail["reason"] == (
            f"Active: 10 rows scored, 50 rows waiting to be scored, "
            f"{detail['inputQueueDepth']} input batch"
            f"{'' if detail['inputQueueDepth'] == 1 else 'es'} queued for the model.")
    wait_scored(live, name, 60)


def test_error_state_reports_the_models_message(live: LiveEngine) -> None:
    name = "api.error"
    createDatasourceAdapter("custom").monitorMetric({
        "datasource": "custom", "metricSpec": {"metric": name},
        "completeModelParams": {"modelConfig": {"model": "HTMPrediction", "modelParams": {}},
                                "inferenceArgs": {}, "timestampFieldName": "c0",
                                "valueFieldName": "c1"}})
    wait_status(live, name, "ACTIVE")
    post_samples(live, name, samples(2, range(3)))
    detail = wait_status(live, name, "ERROR")
    assert "inferenceType must be TemporalAnomaly" in detail["message"]
    assert detail["reason"].startswith(
        f"Error: the model failed and scores nothing: {detail['message'].strip()}.")
    rejected = post_samples(live, name, samples(2, range(3, 5)))
    assert rejected["accepted"] == 0
    assert all("ERROR" in s["reason"] for s in rejected["samples"])
    # unmonitor and monitor again with a working model: it scores the stored rows
    assert live.request("DELETE", f"/api/v1/metrics/{name}/model").json()["status"] == \
        "UNMONITORED"
    assert live.request("PUT", f"/api/v1/metrics/{name}/model",
                        json={"min": 0, "max": 200}).status_code == 201
    wait_scored(live, name, 3)


def test_list_filters_by_status_and_pages(live: LiveEngine) -> None:
    names = [f"api.list.{i}" for i in range(5)]
    for index, name in enumerate(names):
        post_samples(live, name, samples(index, range(2)))
    everything = live.get("/api/v1/metrics", params={"limit": 1000}).json()
    listed = [m["name"] for m in everything["metrics"]]
    assert listed == sorted(listed) and set(names) <= set(listed)
    assert everything["total"] == len(listed)
    unmonitored = live.get("/api/v1/metrics", params={"status": "UNMONITORED",
                                                      "limit": 1000}).json()
    assert {m["status"] for m in unmonitored["metrics"]} == {"UNMONITORED"}
    assert set(names) <= {m["name"] for m in unmonitored["metrics"]}
    by_code = live.get("/api/v1/metrics", params={"status": "0", "limit": 1000}).json()
    assert by_code == unmonitored
    start = [m["name"] for m in unmonitored["metrics"]].index(names[0])
    page = live.get("/api/v1/metrics", params={"status": "unmonitored", "offset": start + 1,
                                               "limit": 2}).json()
    assert [m["name"] for m in page["metrics"]] == names[1:3]
    assert (page["offset"], page["limit"], page["total"]) == (start + 1, 2,
                                                              unmonitored["total"])
    entry = next(m for m in page["metrics"] if m["name"] == names[1])
    assert (entry["rowsStored"], entry["rowsScored"], entry["lastAnomalyLikelihood"],
            entry["modelRange"]) == (2, 0, None, None)
    bad = live.get("/api/v1/metrics", params={"status": "SLEEPING"})
    assert bad.status_code == 422 and "SLEEPING" in bad.json()["error"]
    bad = live.get("/api/v1/metrics", params={"limit": 0})
    assert bad.status_code == 422 and "limit" in bad.json()["error"]


def test_unmonitor_and_delete_remove_model_queue_checkpoint_and_data(live: LiveEngine
                                                                      ) -> None:
    name = "api.deleted"
    assert live.request("PUT", f"/api/v1/metrics/{name}/model",
                        json={"min": 0, "max": 100}).status_code == 201
    post_samples(live, name, samples(3, range(20)))
    uid = wait_scored(live, name, 20)["uid"]
    checkpoints = ModelCheckpointMgr()
    wait_for(lambda: checkpoints.hasModel(uid), 60, what="the model's checkpoint")
    assert _queue_exists(uid)

    stopped = live.request("DELETE", f"/api/v1/metrics/{name}/model")
    assert stopped.status_code == 200 and stopped.json()["status"] == "UNMONITORED"
    wait_for(lambda: not checkpoints.hasModel(uid) and not _queue_exists(uid), 60,
             what="the model's checkpoint and input queue to go")
    detail = live.metric(name)
    assert (detail["rowsStored"], detail["rowsScored"]) == (20, 0)
    assert live.request("DELETE", f"/api/v1/metrics/{name}/model").status_code == 200

    assert live.request("PUT", f"/api/v1/metrics/{name}/model",
                        json={"min": 0, "max": 100}).status_code == 201
    wait_scored(live, name, 20)
    wait_for(lambda: checkpoints.hasModel(uid), 60, what="the new checkpoint")
    deleted = live.request("DELETE", f"/api/v1/metrics/{name}")
    assert deleted.status_code == 200 and deleted.json() == {"uid": uid, "name": name,
                                                             "deleted": True}
    assert live.get(f"/api/v1/metrics/{name}").status_code == 404
    with engineFactory().connect() as conn:
        assert queries.getMetricDataCount(conn, uid) == 0
    wait_for(lambda: not checkpoints.hasModel(uid) and not _queue_exists(uid), 60,
             what="the deleted metric's checkpoint and input queue to go")
