"""Every error path of the skeleton web app, through real HTTP requests to the real web app
(a subprocess on the session's MariaDB database and RabbitMQ vhost); the engine's services are
not running, so published samples stay in the custom-metrics queue where the test counts them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from skeleton_test_support import REPO_ROOT, SKELETON_DIR, WebAppProcess

pytestmark = pytest.mark.integration

TS = 1434229721  # 2015-06-13 21:08:41 UTC


def unique_metric() -> str:
    return f"skeleton.test.{uuid.uuid4().hex[:10]}"


def metric_rows(sql_engine: sa.Engine, name: str) -> list[sa.Row]:
    with sql_engine.connect() as conn:
        return conn.execute(sa.text("SELECT uid, status, parameters FROM metric WHERE name = :n"),
                            {"n": name}).fetchall()


def assert_plain_text(resp) -> None:
    assert resp.content_type.startswith("text/plain"), resp.content_type


@pytest.mark.parametrize("body", ['{"min": 0, "max": ', "not json", "\xff\xfe"])
def test_put_with_bad_json_is_400_and_creates_no_metric(webapp, sql_engine, body):
    name = unique_metric()
    resp = webapp.request("PUT", f"/{name}", body.encode("latin-1"))
    assert resp.status == 400
    assert_plain_text(resp)
    assert "JSON" in resp.text
    assert metric_rows(sql_engine, name) == []


@pytest.mark.parametrize("body, expected", [
    ('{"min": 0}', "min given without max"),
    ('{"max": 10}', "max given without min"),
    ('{"min": 5, "max": 5}', "must be greater than min"),
    ('{"min": "zero", "max": 10}', "modelSpec.modelParams.min"),
    ('{"min": 0, "max": 10, "colour": "red"}', "Unknown model params ['colour']"),
    ("[0, 10]", "must be a JSON object"),
])
def test_put_with_invalid_model_params_is_400_and_creates_no_metric(webapp, sql_engine, body,
                                                                     expected):
    name = unique_metric()
    resp = webapp.request("PUT", f"/{name}", body)
    assert resp.status == 400, resp.text
    assert_plain_text(resp)
    assert expected in resp.text
    assert metric_rows(sql_engine, name) == []


def test_put_creates_the_model_and_a_second_put_is_400_already_exists(webapp, sql_engine):
    name = unique_metric()
    first = webapp.request("PUT", f"/{name}", '{"min": 0, "max": 12}')
    assert first.status == 201, first.text
    assert_plain_text(first)
    [row] = metric_rows(sql_engine, name)
    assert first.text == f"Created {row.uid}\n"
    assert row.status == 2  # CREATE_PENDING: the model swapper is asked to create it
    assert json.loads(row.parameters)["modelParams"] == {"min": 0, "max": 12}

    second = webapp.request("PUT", f"/{name}", '{"min": 0, "max": 50}')
    assert second.status == 400
    assert_plain_text(second)
    assert f"Model already exists for /{name}" in second.text and row.uid in second.text
    [again] = metric_rows(sql_engine, name)
    assert json.loads(again.parameters)["modelParams"] == {"min": 0, "max": 12}


def test_put_without_params_waits_for_data_and_a_second_put_is_400(webapp, sql_engine):
    name = unique_metric()
    first = webapp.request("PUT", f"/{name}")
    assert first.status == 201, first.text
    [row] = metric_rows(sql_engine, name)
    assert row.status == 8  # PENDING_DATA until 288 rows are stored
    second = webapp.request("PUT", f"/{name}")
    assert second.status == 400 and "already exists" in second.text


@pytest.mark.parametrize("bad_line, expected", [
    ("abc 1434229800", "is not a number"),
    ("NaN 1434229800", "is not a finite number"),
    ("inf 1434229800", "is not a finite number"),
    ("1.5", "got 1 field(s)"),
    ("1.5 1434229800 extra", "got 3 field(s)"),
    ("1.5 yesterday", "timestamp 'yesterday'"),
    ("1.5 -5", "is not a unix time"),
])
def test_post_with_a_malformed_line_is_400_naming_it_and_publishes_nothing(
        webapp, skeleton_bus, custom_metrics_queue, sql_engine, bad_line, expected):
    name = unique_metric()
    body = f"1.0 {TS}\n2.0 {TS + 5}\n{bad_line}\n3.0 {TS + 10}\n"
    resp = webapp.request("POST", f"/{name}", body)
    assert resp.status == 400
    assert_plain_text(resp)
    assert f"Malformed line 3 {bad_line!r}" in resp.text
    assert expected in resp.text
    assert "nothing from this request was stored" in resp.text
    assert skeleton_bus.message_count(custom_metrics_queue) == 0
    assert metric_rows(sql_engine, name) == []


def test_post_with_an_empty_body_is_400(webapp, skeleton_bus, custom_metrics_queue):
    resp = webapp.request("POST", f"/{unique_metric()}", "\n  \n")
    assert resp.status == 400 and "Empty request body" in resp.text
    assert_plain_text(resp)
    assert skeleton_bus.message_count(custom_metrics_queue) == 0


def test_post_publishes_every_line_as_one_message(webapp, skeleton_bus, custom_metrics_queue):
    name = unique_metric()
    resp = webapp.request("POST", f"/{name}", f"1.62 {TS}\n1.73 {TS + 5}")
    assert resp.status == 200, resp.text
    assert_plain_text(resp)
    assert resp.text == (f"Saved /{name} 1.620000 @ {TS}\n"
                         f"Saved /{name} 1.730000 @ {TS + 5}\n")
    assert skeleton_bus.message_count(custom_metrics_queue) == 1
    message = skeleton_bus.get(custom_metrics_queue)
    skeleton_bus.ack(message.delivery_tag)
    assert json.loads(message.body) == {
        "protocol": "plain", "data": [f"{name} 1.62 {TS}", f"{name} 1.73 {TS + 5}"]}


def test_get_of_an_unknown_metric_is_404(webapp):
    resp = webapp.request("GET", f"/{unique_metric()}")
    assert resp.status == 404
    assert_plain_text(resp)
    assert "Unknown metric" in resp.text


@pytest.mark.parametrize("method", ["GET", "PUT", "POST"])
def test_a_missing_or_invalid_metric_name_is_400(webapp, method):
    for path in ("/", "/bad%09name"):
        resp = webapp.request(method, path, f"1 {TS}" if method == "POST" else None)
        assert resp.status == 400, (path, resp.text)
        assert_plain_text(resp)


def test_get_lists_rows_in_time_order_with_none_while_unscored(webapp, sql_engine):
    from htmengine.adapters.datasource import createDatasourceAdapter
    from htmengine.repository import queries

    name = unique_metric()
    uid = createDatasourceAdapter("custom").createMetric(name)
    with sql_engine.begin() as conn:
        queries.addMetricData(conn, uid, [(1.7, datetime(2015, 6, 13, 21, 7, 5)),
                                          (1.72, datetime(2015, 6, 13, 21, 7, 8))])
        conn.execute(sa.text("UPDATE metric_data SET anomaly_score = 0.25 "
                             "WHERE uid = :u AND rowid = 1"), {"u": uid})
    resp = webapp.request("GET", f"/{name}")
    assert resp.status == 200
    assert_plain_text(resp)
    assert resp.text == (f"/{name} 1.7 1434229625 0.25\n"
                         f"/{name} 1.72 1434229628 None\n")


def test_a_second_web_app_on_a_busy_port_exits_with_a_clear_error(webapp, engine_env):
    run = subprocess.run([sys.executable, str(SKELETON_DIR / "webapp.py"), "--port",
                          str(webapp.port)], cwd=REPO_ROOT, env=engine_env.subprocess_env(),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"cannot listen on 127.0.0.1:{webapp.port}" in run.stderr
    assert webapp.request("GET", f"/{unique_metric()}").status == 404  # the first one still serves


def test_an_unreachable_bus_or_database_is_503_never_500(webapp, engine_env, sql_engine,
                                                         tmp_path):
    env = {**engine_env.subprocess_env(),
           "_NTA_UTILS_CONFIG__RABBITMQ__CONNECTION__VIRTUAL_HOST": "no_such_vhost_skeleton",
           "_NTA_UTILS_CONFIG__APPLICATION__REPOSITORY__DB": "no_such_db_skeleton"}
    broken = WebAppProcess(env, tmp_path / "broken-webapp.log")
    try:
        name = unique_metric()
        posted = broken.request("POST", f"/{name}", f"1.0 {TS}")
        assert posted.status == 503, posted.text
        assert "message bus is unavailable" in posted.text
        got = broken.request("GET", f"/{name}")
        assert got.status == 503, got.text
        assert "database is unavailable" in got.text
        put = broken.request("PUT", f"/{name}", '{"min": 0, "max": 1}')
        assert put.status == 503, put.text
        assert_plain_text(put)
    finally:
        assert broken.stop() == 0, broken.output()
    # nothing half-done stops the working web app from creating the model afterwards
    assert webapp.request("PUT", f"/{name}", '{"min": 0, "max": 1}').status == 201
