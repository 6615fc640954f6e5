"""``GET /metrics`` parsed by prometheus_client's parser: counters of every engine process
(multiprocess mode) equal to what this test sent and the engine scored; state gauges."""

from __future__ import annotations

import json
import re

import pytest
from api_support import LiveEngine, post_samples, samples, wait_scored
from process_support import REPO_ROOT, wait_for
from prometheus_client.parser import text_string_to_metric_families
from supervised_support import T0, graphiteLines, sendLines

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scrape(live: LiveEngine) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    response = live.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(scraped: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_equal_what_was_sent_and_scored(live: LiveEngine) -> None:
    name, graphite_name = "api.prom", "api.prom.graphite"
    before = scrape(live)
    assert live.request("PUT", f"/api/v1/metrics/{name}/model",
                        json={"min": 0, "max": 100}).status_code == 201
    answer = post_samples(live, name, samples(4, range(50)) + [
        {"timestamp": T0, "value": 1},              # older
        {"timestamp": T0 + 300 * 49, "value": 1},   # duplicate
        {"timestamp": T0 + 300 * 50, "value": "nan"}])
    assert (answer["accepted"], answer["rejected"]) == (50, 3)
    lines = graphiteLines(graphite_name, 5, range(30)) + ["not a sample line\n",
                                                          graphiteLines(graphite_name, 5,
                                                                        range(2))[0]]
    sendLines(live.plaintext_port, lines)
    wait_for(lambda: live.get(f"/api/v1/metrics/{graphite_name}").status_code == 200
             and live.metric(graphite_name)["rowsStored"] == 30, 60, interval=0.3)
    wait_scored(live, name, 50)

    def settled() -> dict | None:
        after = scrape(live)
        scored = (value(after, "htmengine_rows_scored_total")
                  - value(before, "htmengine_rows_scored_total"))
        return after if scored >= 50 else None

    after = wait_for(settled, 60, interval=0.5, what="the scored rows to be counted")

    def delta(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert delta("htmengine_samples_received_total") == 53 + 32
    assert delta("htmengine_samples_stored_total") == 50 + 30
    assert delta("htmengine_samples_rejected_total", reason="out_of_order") == 2
    assert delta("htmengine_samples_rejected_total", reason="duplicate") == 1
    assert delta("htmengine_samples_rejected_total", reason="not_finite") == 1
    assert delta("htmengine_samples_rejected_total", reason="malformed") == 1
    assert delta("htmengine_rows_scored_total") == 50
    assert delta("htmengine_score_latency_seconds_count") == 50
    assert delta("htmengine_score_latency_seconds_sum") > 0
    assert delta("htmengine_model_checkpoints_total") >= 1
    assert delta("htmengine_model_loads_total") >= 1
    assert value(after, "htmengine_metric_last_value", metric=name) == \
        samples(4, range(49, 50))[0]["value"]
    assert value(after, "htmengine_metric_last_value", metric=graphite_name) == \
        float(graphiteLines(graphite_name, 5, range(29, 30))[0].split()[1])
    likelihood = live.metric(name)["lastAnomalyLikelihood"]
    assert value(after, "htmengine_metric_last_anomaly_likelihood", metric=name) == likelihood
    active = live.get("/api/v1/metrics", params={"status": "ACTIVE", "limit": 1000}).json()
    assert value(after, "htmengine_models", status="ACTIVE") == active["total"]
    for queue in ("custom_metrics", "model_results", "model_input", "alerts"):
        assert ("htmengine_queue_depth", (("queue", queue),)) in after
    for service in ("metric_listener", "metric_storer", "model_scheduler", "anomaly_service",
                    "alert_service", "api"):
        assert value(after, "htmengine_service_heartbeat_timestamp_seconds",
                     service=service) > 0, service
    assert value(after, "htmengine_backend_up", backend="mysql") == 1
    assert value(after, "htmengine_backend_up", backend="rabbitmq") == 1


def test_grafana_dashboard_plots_only_exposed_metrics(live: LiveEngine) -> None:
    dashboard = json.loads((REPO_ROOT / "conf" / "grafana" / "htmengine-dashboard.json")
                           .read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set(re.findall(r"\bhtmengine_[a-z_]+", " ".join(exprs)))
    exposed = {name for name, _labels in scrape(live)}
    assert len(used) >= 14 and used <= exposed, used - exposed
