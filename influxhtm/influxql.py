"""Safe InfluxQL building blocks: quoting of identifiers and string literals, validation of
names written through the line protocol, and conversion of times to and from epoch numbers.

Every identifier and tag value that reaches a query goes through `quoteIdent` or
`quoteLiteral`; nothing is ever pasted into a statement unquoted.
"""

from __future__ import annotations

import math
import numbers
from datetime import UTC, datetime, timedelta
from typing import Any

from influxhtm.errors import InfluxHtmInputError, InvalidNameError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A type that callers may pass wherever a time is expected.
TimeLike = datetime | int | float | str


def _escapeQuoted(text: str, quote: str) -> str:
    """Escape `text` for use between `quote` characters (InfluxQL scanner rules)."""
    return (text.replace("\\", "\\\\")
                .replace(quote, "\\" + quote)
                .replace("\n", "\\n"))


def quoteIdent(name: str) -> str:
    """`name` as a double-quoted InfluxQL identifier (measurement, tag key, field, policy)."""
    if not isinstance(name, str) or name == "":
        raise InvalidNameError(f"an InfluxQL identifier must be a non-empty string, got {name!r}")
    return '"' + _escapeQuoted(name, '"') + '"'


def quoteLiteral(value: str) -> str:
    """`value` as a single-quoted InfluxQL string literal (tag values)."""
    if not isinstance(value, str):
        raise InvalidNameError(f"an InfluxQL string literal must be a string, got {value!r}")
    return "'" + _escapeQuoted(value, "'") + "'"


def checkName(kind: str, name: Any) -> str:
    """Return `name` if it can be written as a measurement or tag value through the line
    protocol of InfluxDB 1.x and read back unchanged; otherwise raise InvalidNameError naming
    `kind` and the value. Quotes, spaces, commas, '=' and any unicode letter are fine;
    backslashes and control characters are not (1.x stores them ambiguously)."""
    if not isinstance(name, str):
        raise InvalidNameError(f"{kind} must be a string, got {name!r}")
    if name == "":
        raise InvalidNameError(f"{kind} must not be empty")
    if "\\" in name:
        raise InvalidNameError(f"{kind} {name!r} contains a backslash, which InfluxDB 1.x "
                               f"cannot store unambiguously")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise InvalidNameError(f"{kind} {name!r} contains a control character")
    return name


def toEpochMicros(value: TimeLike, what: str = "time") -> int:
    """Microseconds since the epoch for a datetime (naive = UTC), an epoch number in seconds
    or an ISO 8601 string."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, bool):
        raise InfluxHtmInputError(f"{what} must be a datetime, epoch seconds or ISO string, "
                               f"got {value!r}")
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise InfluxHtmInputError(f"{what} must be finite, got {value!r}")
        if isinstance(value, numbers.Integral):
            return int(value) * 1_000_000
        return round(number * 1_000_000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InfluxHtmInputError(f"{what} {value!r} is not an ISO 8601 time") from None
        return toEpochMicros(parsed, what)
    raise InfluxHtmInputError(f"{what} must be a datetime, epoch seconds or ISO string, "
                           f"got {value!r}")


def fromEpochMicros(micros: int) -> datetime:
    """Aware UTC datetime for a number of microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=int(micros))


def timeLiteral(value: TimeLike, what: str = "time") -> str:
    """An InfluxQL time literal (epoch nanoseconds) for `value`."""
    return str(toEpochMicros(value, what) * 1000)
