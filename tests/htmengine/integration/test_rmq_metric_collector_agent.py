"""htmengine.monitors.rmq_metric_collector_agent against the real broker and the engine under
supervisord (conftest.py): queue depths from the management API or from passive declares,
sent over graphite to the engine, where they become custom metrics with data rows; run once
from the command line and as the (off by default) supervisord program."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest
from supervised_support import waitFor

from htmengine import repository
from htmengine.exceptions import ObjectNotFoundError
from nta_utils.errors import QueueNotFoundError
from nta_utils.message_bus import MessageBus
from nta_utils.message_bus_connector import MessageBusConnector
from nta_utils.rabbitmq_management import RabbitmqManagementClient

pytestmark = [pytest.mark.integration]

AGENT = "htmengine.monitors.rmq_metric_collector_agent"
CUSTOM_QUEUE_VAR = "_NTA_UTILS_CONFIG__APPLICATION__METRIC_LISTENER__QUEUE_NAME"


def _agent(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", AGENT, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture()
def filledQueue(engine_env):  # noqa: ANN201
    """A queue of the session's vhost holding 3 messages."""
    name = f"agent_test.{uuid.uuid4().hex[:8]}"
    with MessageBus() as bus:
        bus.declare_queue(name)
        for i in range(3):
            bus.publish_to_queue(name, f"m{i}".encode())
        yield name
        bus.delete_queue(name)


def _metricValues(name: str) -> list[float]:
    with repository.engineFactory().connect() as conn:
        try:
            uid = repository.getCustomMetricByName(conn, name).uid
        except ObjectNotFoundError:
            return []
        return [row.metric_value for row in repository.getMetricData(conn, metricId=uid)]


def test_help_does_not_act() -> None:
    done = _agent("--help")
    assert done.returncode == 0 and "--metric-addr" in done.stdout and "--dryRun" in done.stdout


def test_dry_run_from_passive_declares_prints_exact_depths(filledQueue) -> None:
    done = _agent("--dryRun", "--once", "--source", "amqp", "--metric-prefix", "t",
                  "--rmq-queues", f"{filledQueue},agent_test.missing")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"t-q-{re.escape(filledQueue)}-ready\.avg 3\.0 \d+\n", done.stdout)
    assert "agent_test.missing" in done.stderr    # a missing queue is named, not fatal


def test_management_api_unreachable_falls_back_to_passive_declares(filledQueue) -> None:
    done = _agent("--dryRun", "--once", "--rmq-addr", "127.0.0.1:1", "--metric-prefix", "t",
                  "--rmq-queues", filledQueue)
    assert done.returncode == 0, done.stderr
    assert "management API unreachable" in done.stderr
    assert re.fullmatch(rf"t-q-{re.escape(filledQueue)}-ready\.avg 3\.0 \d+\n", done.stdout)


def test_get_all_message_queues_lists_the_vhost_queues(filledQueue) -> None:
    with MessageBusConnector() as connector:
        names = connector.getAllMessageQueues()
    assert filledQueue in names
    assert os.environ[CUSTOM_QUEUE_VAR] in names      # the engine's queues are there too


def test_metrics_from_the_management_api_reach_metric_data(engine_env, filledQueue) -> None:
    management = RabbitmqManagementClient.fromConfig()
    # the API's statistics lag the broker by up to its 5 s collection interval

    def apiSeesThree() -> bool:
        try:
            return management.getQueueReadyMessages(engine_env.vhost, filledQueue) == 3
        except QueueNotFoundError:   # not in the statistics database yet
            return False

    waitFor(apiSeesThree, 30, what="the management API to see 3 messages")
    prefix = f"agent{uuid.uuid4().hex[:6]}"
    done = _agent("--once", "--average-seconds", "0", "--metric-prefix", prefix,
                  "--metric-addr", f"127.0.0.1:{engine_env.plaintext_port}",
                  "--rmq-queues", filledQueue)
    assert done.returncode == 0, done.stderr
    assert waitFor(lambda: _metricValues(f"{prefix}-q-{filledQueue}-ready.avg"), 60,
                   what="the queue metric in metric_data") == [3.0]
    total = waitFor(lambda: _metricValues(f"{prefix}-allq-ready.avg"), 60,
                    what="the all-queues metric in metric_data")
    assert len(total) == 1 and total[0] >= 3.0


def test_supervisord_program_is_off_by_default_and_reports_the_engine_queues(
        running_engine) -> None:
    assert " RUNNING " not in running_engine.ctl("status", "rmq_metric_collector_agent")
    started = running_engine.ctl("start", "rmq_metric_collector_agent")
    try:
        assert "started" in started, started
        name = f"rmq-q-{os.environ[CUSTOM_QUEUE_VAR]}-ready.avg"
        values = waitFor(lambda: _metricValues(name), 90,
                         what=f"{name} from the supervised agent in metric_data")
        assert values and all(v >= 0 for v in values)
    finally:
        running_engine.ctl("stop", "rmq_metric_collector_agent")
    log = (running_engine.runDir / "rmq_metric_collector_agent.log").read_text()
    assert "Sent" in log, log
