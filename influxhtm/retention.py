"""Aggregated copies of a sensor: one retention policy and one continuous query per period."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from influxhtm.aggregation import Aggregation, durationSeconds
from influxhtm.errors import InfluxHtmInputError
from influxhtm.influxql import quoteIdent, quoteLiteral
from influxhtm.queries import timeBounds
from influxhtm.sensor_ref import SensorRef
from influxhtm.transport import COMPONENT_TAG, VALUE_FIELD

RETENTION_PREFIX = "htm_"
_INF = {"INF", "inf"}


def retentionPolicyName(period: str) -> str:
    """Name of the retention policy holding copies aggregated over `period` ("htm_10m")."""
    durationSeconds(period)
    return RETENTION_PREFIX + period.replace("µ", "u")


def continuousQueryName(sensor: SensorRef, period: str, method: str) -> str:
    """A name unique to (sensor, period, method), readable where the names allow it."""
    digest = hashlib.sha1(f"{sensor.getMeasurement()}\0{sensor.getComponent()}".encode())
    readable = re.sub(r"[^A-Za-z0-9]+", "_", sensor.getMeasurement())[:40].strip("_")
    return f"htm_{readable}_{digest.hexdigest()[:10]}_{method}_{period.replace('µ', 'u')}"


def _checkDuration(duration: str) -> str:
    if duration in _INF:
        return "INF"
    seconds = durationSeconds(duration)
    if seconds < 3600:
        raise InfluxHtmInputError(f"retention duration {duration!r} must be at least 1h or INF")
    return duration


def createAggregatedCopies(sensor: SensorRef, periods: Iterable[str], method: str = "mean",
                           duration: str = "INF", backfill: bool = True) -> dict[str, str]:
    """Create, for each period, the retention policy `htm_<period>` (keeping `duration`) and a
    continuous query writing `method(value)` of each bucket of this sensor into it (same
    measurement and component); with `backfill`, existing data is aggregated at once (the
    continuous query only covers new buckets). Idempotent. Returns {period: retention policy}."""
    if sensor.getRetentionPolicy() is not None:
        raise InfluxHtmInputError(f"{sensor!r} is already an aggregated copy")
    client = sensor.getClient()
    duration = _checkDuration(duration)
    periods = list(periods)
    if not periods:
        raise InfluxHtmInputError("createAggregatedCopies needs at least one period")
    client.createDatabase()
    database = quoteIdent(client.database)
    source = ".".join((database, quoteIdent(client.defaultRetentionPolicy()),
                       quoteIdent(sensor.getMeasurement())))
    where = f"{quoteIdent(COMPONENT_TAG)} = {quoteLiteral(sensor.getComponent())}"
    copies: dict[str, str] = {}
    for period in periods:
        agg = Aggregation(method, period)
        policy = retentionPolicyName(period)
        existing = {row[0] for series in client.query(f"SHOW RETENTION POLICIES ON {database}")
                    for row in series.get("values") or []}
        verb = "ALTER" if policy in existing else "CREATE"
        client.query(f"{verb} RETENTION POLICY {quoteIdent(policy)} ON {database} "
                     f"DURATION {duration} REPLICATION 1", write=True)
        target = ".".join((database, quoteIdent(policy), quoteIdent(sensor.getMeasurement())))
        select = (f"SELECT {agg.method}({quoteIdent(VALUE_FIELD)}) AS {quoteIdent(VALUE_FIELD)} "
                  f"INTO {target} FROM {source} WHERE {where}")
        grouping = f"GROUP BY time({period}), {quoteIdent(COMPONENT_TAG)}"
        name = quoteIdent(continuousQueryName(sensor, period, agg.method))
        client.query(f"CREATE CONTINUOUS QUERY {name} ON {database} "
                     f"BEGIN {select} {grouping} END", write=True)
        if backfill:
            first, last = timeBounds(sensor.seriesRef(), VALUE_FIELD)
            if first is not None and last is not None:
                client.query(f"{select} AND time >= {first * 1000} AND time <= {last * 1000} "
                             f"{grouping}", write=True)
        copies[period] = policy
    return copies


def listContinuousQueries(sensor: SensorRef) -> list[str]:
    """Names of the continuous queries createAggregatedCopies made for `sensor`."""
    prefix = continuousQueryName(sensor, "1s", "mean").rsplit("_mean_", 1)[0] + "_"
    names: list[str] = []
    for series in sensor.getClient().query("SHOW CONTINUOUS QUERIES", database=None):
        if series.get("name") != sensor.getClient().database:
            continue
        names.extend(row[0] for row in series.get("values") or [] if row[0].startswith(prefix))
    return sorted(names)
