"""Aggregation specifications: a period ("10m") or {"method": "mean", "period": "10m"}."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from influxhtm.errors import InfluxHtmInputError
from influxhtm.influxql import quoteIdent

# InfluxQL functions that take one field and return one value per time bucket.
AGGREGATION_METHODS = frozenset({
    "mean", "median", "mode", "sum", "count", "min", "max", "first", "last", "spread",
    "stddev",
})

_DURATION = re.compile(r"(?:[0-9]+(?:ns|u|µ|ms|s|m|h|d|w))+")
_DURATION_PART = re.compile(r"([0-9]+)(ns|u|µ|ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ns": 1e-9, "u": 1e-6, "µ": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600,
                 "d": 86400, "w": 604800}


def durationSeconds(period: str) -> float:
    """Length of an InfluxQL duration literal ("10m", "1h30m") in seconds;
    InfluxHtmInputError if `period` is not one or is zero."""
    if not isinstance(period, str) or not _DURATION.fullmatch(period):
        raise InfluxHtmInputError(f"aggregation period {period!r} is not an InfluxQL duration "
                               f"such as '10m', '1h' or '1d'")
    seconds = sum(int(count) * _UNIT_SECONDS[unit]
                  for count, unit in _DURATION_PART.findall(period))
    if seconds <= 0:
        raise InfluxHtmInputError(f"aggregation period {period!r} must be longer than zero")
    return seconds


@dataclass(frozen=True)
class Aggregation:
    """One aggregation: an InfluxQL function applied over buckets of `period`."""

    method: str
    period: str

    def __post_init__(self) -> None:
        if self.method not in AGGREGATION_METHODS:
            raise InfluxHtmInputError(f"aggregation method {self.method!r} is not one of "
                                   f"{sorted(AGGREGATION_METHODS)}")
        durationSeconds(self.period)

    @property
    def seconds(self) -> float:
        """The period in seconds."""
        return durationSeconds(self.period)

    def selectField(self, field: str) -> str:
        """`method("field") AS "field"` for the SELECT clause."""
        return f"{self.method}({quoteIdent(field)}) AS {quoteIdent(field)}"

    def groupBy(self) -> str:
        """The GROUP BY time clause of this aggregation (empty buckets are left out)."""
        return f"GROUP BY time({self.period}) fill(none)"


AggregationSpec = str | dict[str, Any] | Aggregation | None


def parseAggregation(spec: AggregationSpec) -> Aggregation | None:
    """Turn "10m", {"period": "10m"} or {"method": "max", "period": "10m"} into an
    Aggregation (mean by default); None stays None."""
    if spec is None or isinstance(spec, Aggregation):
        return spec
    if isinstance(spec, str):
        return Aggregation("mean", spec)
    if isinstance(spec, dict):
        unknown = set(spec) - {"method", "period"}
        if unknown:
            raise InfluxHtmInputError(f"aggregation {spec!r} has unknown keys {sorted(unknown)}")
        if "period" not in spec:
            raise InfluxHtmInputError(f"aggregation {spec!r} needs a 'period' such as '10m'")
        method = spec.get("method", "mean")
        if not isinstance(method, str):
            raise InfluxHtmInputError(f"aggregation method {method!r} must be a string")
        return Aggregation(method.lower(), spec["period"])
    raise InfluxHtmInputError(f"aggregation must be a period string or a dict with 'method' and "
                           f"'period', got {spec!r}")
