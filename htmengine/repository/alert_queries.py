"""The alert service's durable per-metric state, kept in ``metric.model_params`` under the key
``alertState`` (``lastRowid``: the newest row an alert was decided for; ``lastAlertAt``: unix
time of the last alert sent), read and written under the metric row lock like the other
writers of that column. Unmonitoring a metric replaces model_params and so resets it, as its
rows are then scored anew."""

from __future__ import annotations

import enum
import json

import sqlalchemy as sa

from htmengine.repository import schema
from htmengine.repository.transactions import atomic, writeQuery

ALERT_STATE_KEY = "alertState"

__all__ = ["ALERT_STATE_KEY", "AlertDecision", "claim_alert"]


class AlertDecision(enum.Enum):
    """What to do with a row over the threshold."""

    SEND = "send"                  # first alert for this row, interval respected
    DUPLICATE = "duplicate"        # decided before (redelivered or republished result)
    TOO_SOON = "too_soon"          # within min_interval of the metric's previous alert
    UNKNOWN_METRIC = "unknown"     # the metric is gone


@writeQuery
def claim_alert(conn: sa.Connection, uid: str, rowid: int, now: float,
                min_interval: float) -> AlertDecision:
    """Decide, atomically and durably, whether row `rowid` of metric `uid` gets an alert at
    time `now`; a SEND or TOO_SOON decision is recorded so the row is never alerted again
    (at most once per row, across restarts)."""
    metric = schema.metric
    with atomic(conn):
        row = conn.execute(sa.select(metric.c.model_params).where(metric.c.uid == uid)
                           .with_for_update()).first()
        if row is None:
            return AlertDecision.UNKNOWN_METRIC
        try:
            params = json.loads(row.model_params) if row.model_params else {}
        except ValueError:
            params = {}
        if not isinstance(params, dict):
            params = {}
        state = params.get(ALERT_STATE_KEY)
        state = state if isinstance(state, dict) else {}
        if rowid <= int(state.get("lastRowid", 0)):
            return AlertDecision.DUPLICATE
        last_alert = float(state.get("lastAlertAt", 0.0))
        decision = (AlertDecision.TOO_SOON if now - last_alert < min_interval
                    else AlertDecision.SEND)
        state["lastRowid"] = int(rowid)
        if decision is AlertDecision.SEND:
            state["lastAlertAt"] = now
        params[ALERT_STATE_KEY] = state
        conn.execute(metric.update().where(metric.c.uid == uid)
                     .values(model_params=json.dumps(params)))
    return decision
