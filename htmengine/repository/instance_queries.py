"""Queries about servers/instances (`metric.server`, `instance_status_history`); original
names, re-exported by `htmengine.repository.queries`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from htmengine.repository import schema
from htmengine.repository.metric_status import MetricStatus
from htmengine.repository.transactions import AnyRow, atomic, writeQuery

_history = schema.instance_status_history


def getMetricCountForServer(conn: sa.Connection, server: str) -> int:
    """Number of metrics whose `server` column is `server`."""
    sel = sa.select(sa.func.count(schema.metric.c.uid)).where(schema.metric.c.server == server)
    return int(conn.execute(sel).scalar_one())


def listMetricIDsForInstance(conn: sa.Connection, server: str) -> list[str]:
    """Uids of the metrics whose `server` column is `server`."""
    sel = (sa.select(schema.metric.c.uid).where(schema.metric.c.server == server)
           .order_by(schema.metric.c.uid))
    return [row.uid for row in conn.execute(sel)]


@writeQuery
def saveMetricInstanceStatus(conn: sa.Connection, server: str, status: str,
                             timestamp: datetime | None = None) -> None:
    """Append (server, timestamp, status) to instance_status_history unless `status` equals
    the server's latest recorded status. `timestamp` defaults to now (naive UTC)."""
    timestamp = timestamp or datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with atomic(conn):
        latest = conn.execute(
            sa.select(_history.c.status).where(_history.c.server == server)
            .order_by(_history.c.timestamp.desc()).limit(1)).first()
        if latest is None or latest.status != status:
            conn.execute(_history.insert().values(server=server, status=status,
                                                  timestamp=timestamp))


def getInstanceStatusHistory(conn: sa.Connection, server: str) -> list[AnyRow]:
    """The server's status history rows, oldest first."""
    sel = (sa.select(_history).where(_history.c.server == server)
           .order_by(_history.c.timestamp))
    return list(conn.execute(sel).fetchall())


def _namespace(name: str) -> str:
    """Metric name up to (excluding) its second "/", or the whole name."""
    parts = name.split("/", 2)
    return "/".join(parts[:2]) if len(parts) == 3 else name


def getInstances(conn: sa.Connection) -> list[dict[str, Any]]:
    """One summary per server that has monitored metrics: server, location, namespace, name
    (tag_name), status (OR of its metrics' statuses), parameters (decoded JSON) and the
    metrics' messages joined by newlines."""
    sel = (sa.select(schema.metric)
           .where(schema.metric.c.status != MetricStatus.UNMONITORED)
           .order_by(schema.metric.c.uid))
    instances: dict[Any, dict[str, Any]] = {}
    for row in conn.execute(sel):
        instance = instances.setdefault(row.server, {
            "server": row.server,
            "location": row.location,
            "namespace": _namespace(row.name or ""),
            "name": row.tag_name,
            "status": int(MetricStatus.UNMONITORED),
            "parameters": json.loads(row.parameters) if row.parameters else None,
            "message": None,
        })
        instance["status"] |= int(row.status or 0)
        instance["message"] = "\n".join(
            message for message in (instance["message"], row.message) if message) or None
    return list(instances.values())
