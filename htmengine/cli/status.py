"""What ``htmengine status`` and ``htmengine metrics`` show: the supervised services, the depth
of the engine's queues, and the metrics by status (with the message of each one that is not
scoring)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from htmengine.api.views import reason_for
from htmengine.config import app_config, config_dir, swapper_config
from htmengine.repository import api_queries
from htmengine.repository.queries import MetricStatus
from nta_utils.config_location import REPO_ROOT
from nta_utils.errors import QueueNotFoundError
from nta_utils.message_bus import MessageBus


@dataclass(frozen=True)
class MetricInfo:
    """One metric as listed by ``htmengine metrics``."""

    uid: str
    name: str
    status: str
    message: str | None
    rows: int
    last_timestamp: str | None
    reason: str


@dataclass
class EngineStatus:
    """Everything ``htmengine status`` prints."""

    services: str
    queues: list[tuple[str, int | None]] = field(default_factory=list)
    model_queues: tuple[int, int] = (0, 0)  # (queues, messages)
    by_status: Counter[str] = field(default_factory=Counter)
    not_scoring: list[MetricInfo] = field(default_factory=list)


def status_name(status: int | None) -> str:
    """MetricStatus name of a metric.status value (UNKNOWN(<n>) when it is none of them)."""
    try:
        return MetricStatus(status or 0).name
    except ValueError:
        return f"UNKNOWN({status})"


def list_metrics(engine: sa.Engine) -> list[MetricInfo]:
    """Every metric with its status, message, row count, newest timestamp and the sentence
    saying why it is (not) scoring, by name."""
    min_rows = app_config().getint("metric_storer", "min_rows_for_model")
    infos = []
    with engine.connect() as conn:
        total = api_queries.count_metrics(conn)
        for summary in api_queries.get_metric_summaries(conn, limit=max(total, 1)):
            infos.append(MetricInfo(
                summary.uid, summary.name, status_name(summary.status), summary.message,
                summary.rows_stored,
                None if summary.last_timestamp is None
                else f"{summary.last_timestamp:%Y-%m-%d %H:%M:%S}",
                reason_for(summary, min_rows, None,
                           start_hint=f"htmengine monitor {summary.name}")))
    return sorted(infos, key=lambda info: info.name)


def supervised_services(supervisor_url: str | None) -> str:
    """`supervisorctl status` of the application's supervisord.conf (in the configuration
    folder), or a line saying why there is none."""
    conf = Path(config_dir()) / "supervisord.conf"
    if not conf.is_file():
        return f"(no supervisord.conf in {conf.parent}: services not supervised from there)"
    command = [str(Path(sys.executable).parent / "supervisorctl"), "-c", str(conf)]
    if supervisor_url:
        command += ["-s", supervisor_url]
    env = {**os.environ}
    env.setdefault("HTMENGINE_RUN_DIR", str(REPO_ROOT / "logs"))
    result = subprocess.run([*command, "status"], capture_output=True, text=True, env=env,
                            timeout=60)
    text = (result.stdout + result.stderr).strip()
    if "refused connection" in text or "no such file" in text.lower():
        return f"not running (supervisord of {conf} is not reachable: {text.splitlines()[0]})"
    return text


def _depth(bus: MessageBus, queue: str) -> int | None:
    try:
        return bus.message_count(queue)
    except QueueNotFoundError:
        return None


def collect_status(engine: sa.Engine, supervisor_url: str | None = None) -> EngineStatus:
    """Services, queue depths (None: the queue does not exist) and metrics by status."""
    app, swapper = app_config(), swapper_config()
    status = EngineStatus(services=supervised_services(supervisor_url))
    metrics = list_metrics(engine)
    status.by_status = Counter(info.status for info in metrics)
    status.not_scoring = [info for info in metrics if info.status != MetricStatus.ACTIVE.name]
    prefix = swapper.get("interface_bus", "model_input_queue_prefix")
    with MessageBus() as bus:
        for queue in (app.get("metric_listener", "queue_name"),
                      swapper.get("interface_bus", "results_queue"),
                      swapper.get("interface_bus", "scheduler_notification_queue")):
            status.queues.append((queue, _depth(bus, queue)))
        depths = [_depth(bus, prefix + info.uid) for info in metrics]
    present = [d for d in depths if d is not None]
    status.model_queues = (len(present), sum(present))
    return status


def format_status(status: EngineStatus) -> str:
    """The text ``htmengine status`` prints."""
    lines = ["services:"] + [f"  {line}" for line in status.services.splitlines()]
    lines.append("queues (messages waiting):")
    for queue, depth in status.queues:
        lines.append(f"  {queue:<48} {'(not declared yet)' if depth is None else depth}")
    lines.append(f"  {'model input queues':<48} {status.model_queues[1]} in "
                 f"{status.model_queues[0]} queue(s)")
    total = sum(status.by_status.values())
    counts = ", ".join(f"{name} {count}" for name, count in sorted(status.by_status.items()))
    lines.append(f"metrics: {total}" + (f" ({counts})" if counts else ""))
    for info in status.not_scoring:
        lines.append(f"  {info.name}: {info.status} ({info.rows} rows) - {info.reason}")
    return "\n".join(lines)
