"""SELECT statements over one series (a sensor or one HTM model's results), built safely."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from influxhtm.aggregation import Aggregation, AggregationSpec, parseAggregation
from influxhtm.errors import InfluxHtmInputError
from influxhtm.influxql import TimeLike, fromEpochMicros, quoteIdent, quoteLiteral, toEpochMicros
from influxhtm.transport import InfluxTransport


class SeriesRef:
    """Where a series lives: measurement, exact tag values (an empty value matches points
    without that tag) and optionally a retention policy."""

    def __init__(self, client: InfluxTransport, measurement: str, tags: Mapping[str, str],
                 retentionPolicy: str | None = None) -> None:
        self.client = client
        self.measurement = measurement
        self.tags = dict(tags)
        self.retentionPolicy = retentionPolicy

    def fromClause(self) -> str:
        """FROM target, qualified with database and retention policy when one is set."""
        if self.retentionPolicy is None:
            return quoteIdent(self.measurement)
        return ".".join((quoteIdent(self.client.database), quoteIdent(self.retentionPolicy),
                         quoteIdent(self.measurement)))

    def tagConditions(self) -> list[str]:
        """`"tag" = 'value'` conditions selecting this series."""
        return [f"{quoteIdent(key)} = {quoteLiteral(value)}" for key, value in self.tags.items()]


def _checkLimit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InfluxHtmInputError(f"limit must be a positive integer, got {limit!r}")
    return limit


def timeBounds(series: SeriesRef, field: str) -> tuple[int | None, int | None]:
    """Epoch microseconds of the first and last point having `field` (None, None if empty)."""
    bounds: list[int | None] = []
    for order in ("ASC", "DESC"):
        statement = (f"SELECT {quoteIdent(field)} FROM {series.fromClause()} "
                     f"WHERE {' AND '.join(series.tagConditions())} "
                     f"ORDER BY time {order} LIMIT 1")
        found = None
        for result in series.client.query(statement):
            values = result.get("values") or []
            if values:
                found = int(values[0][0])
        bounds.append(found)
    return bounds[0], bounds[1]


def selectPoints(series: SeriesRef, fields: Sequence[str], *, since: TimeLike | None = None,
                 until: TimeLike | None = None, limit: int | None = None,
                 aggregation: AggregationSpec = None, afterMicros: int | None = None,
                 boundsField: str | None = None,
                 oldestFirst: bool | None = None) -> list[dict[str, Any]]:
    """Points of `series` in ascending time as dicts with `time` (aware UTC datetime) and each
    field. `since` and `until` are inclusive, `afterMicros` exclusive. With `limit`, the
    earliest points are kept when a lower bound is given (or `oldestFirst`), otherwise the
    latest ones. With an
    aggregation, each row is one bucket (its start time) and empty buckets are left out."""
    limit = _checkLimit(limit)
    agg: Aggregation | None = parseAggregation(aggregation)
    lower = toEpochMicros(since, "since") if since is not None else None
    upper = toEpochMicros(until, "until") if until is not None else None
    earliestFirst = (lower is not None or afterMicros is not None
                     if oldestFirst is None else oldestFirst)
    if agg is not None and (lower is None or upper is None):
        # GROUP BY time needs both ends; InfluxDB would otherwise stop at now().
        first, last = timeBounds(series, boundsField or fields[0])
        if first is None or last is None:
            return []
        lower = first if lower is None else lower
        upper = last if upper is None else upper
    conditions = series.tagConditions()
    if lower is not None:
        conditions.append(f"time >= {lower * 1000}")
    if afterMicros is not None:
        conditions.append(f"time > {afterMicros * 1000}")
    if upper is not None:
        conditions.append(f"time <= {upper * 1000}")
    if agg is None:
        selected = ", ".join(quoteIdent(field) for field in fields)
    else:
        selected = ", ".join(agg.selectField(field) for field in fields)
    statement = f"SELECT {selected} FROM {series.fromClause()}"
    if conditions:
        statement += " WHERE " + " AND ".join(conditions)
    if agg is not None:
        statement += " " + agg.groupBy()
    if limit is not None:
        statement += f" ORDER BY time {'ASC' if earliestFirst else 'DESC'} LIMIT {limit}"
    rows: list[dict[str, Any]] = []
    for result in series.client.query(statement):
        columns = result["columns"]
        for values in result.get("values") or []:
            row = dict(zip(columns, values, strict=True))
            row["time"] = fromEpochMicros(row["time"])
            rows.append(row)
    rows.sort(key=lambda row: row["time"])
    return rows
