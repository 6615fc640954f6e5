"""Graphite plaintext protocol: one sample per line, ``<metric-name> <value> <unix-timestamp>``.

Also the format of the messages that the metric listener publishes to the custom-metrics queue:
``{"protocol": "plain", "data": [line, ...]}`` (JSON, UTF-8). The listener adds an optional
``"source"`` key (e.g. ``"tcp:127.0.0.1:53112"``) so that the storer can say where a malformed
line came from; messages without it are accepted too.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from htmengine.exceptions import InvalidInputError
from nta_utils.bounded_json import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, loads_bounded
from nta_utils.errors import MessageLimitError

PROTOCOL_PLAIN = "plain"

# Longest plaintext line accepted (bytes, without the newline), on every ingest path
MAX_LINE_BYTES = 8192
# metric.name is VARCHAR(255)
MAX_METRIC_NAME_LENGTH = 255
# MySQL DATETIME holds 1000-01-01 .. 9999-12-31; unix time cannot be before 1970 here.
MAX_EPOCH_SECONDS = 253402300799
_EPOCH = datetime(1970, 1, 1)


class Protocol:
    """Supported sample protocols (only the carbon plaintext protocol)."""

    PLAIN = PROTOCOL_PLAIN

    @classmethod
    def values(cls) -> tuple[str, ...]:
        """All supported protocol names."""
        return (cls.PLAIN,)


@dataclass(frozen=True)
class Sample:
    """One parsed sample; `timestamp` is a naive UTC datetime truncated to whole seconds
    (metric_data.timestamp has no fractional part)."""

    metricName: str
    value: float
    timestamp: datetime


def parsePlaintext(line: str | bytes) -> Sample:
    """Parse one plaintext line ``name value timestamp``; InvalidInputError (a ValueError)
    naming the line when it is not exactly three fields, the value is not a finite number or
    the timestamp is not a unix time in [0, 9999-12-31]. Bytes must be UTF-8: a name with
    invalid UTF-8 is rejected, never replaced (different bad names would become one)."""
    if isinstance(line, bytes):
        line = decodeLine(line)
    if not isinstance(line, str):
        raise InvalidInputError(f"plaintext sample must be a string, got {type(line).__name__}")
    fields = line.split()
    if len(fields) != 3:
        raise InvalidInputError(
            f"plaintext sample {line.strip()!r} must have 3 fields "
            f"'<name> <value> <timestamp>', got {len(fields)}")
    name, valueText, tsText = fields
    if len(name) > MAX_METRIC_NAME_LENGTH:
        raise InvalidInputError(
            f"metric name of sample {line.strip()[:80]!r}... is longer than "
            f"{MAX_METRIC_NAME_LENGTH} characters")
    if not name.isprintable():
        raise InvalidInputError(f"metric name {name!r} contains control characters")
    try:
        value = float(valueText)
    except ValueError:
        raise InvalidInputError(
            f"value {valueText!r} of sample {line.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidInputError(
            f"value {valueText!r} of sample {line.strip()!r} is not a finite number")
    try:
        epoch = float(tsText)
    except ValueError:
        raise InvalidInputError(
            f"timestamp {tsText!r} of sample {line.strip()!r} is not a number") from None
    if not (math.isfinite(epoch) and 0 <= epoch <= MAX_EPOCH_SECONDS):
        raise InvalidInputError(
            f"timestamp {tsText!r} of sample {line.strip()!r} is not a unix time between 0 "
            f"and {MAX_EPOCH_SECONDS}")
    return Sample(name, value, _EPOCH + timedelta(seconds=int(epoch)))


def decodeLine(raw: bytes) -> str:
    """`raw` as UTF-8 text; InvalidInputError naming the line and the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            f"line {raw[:120]!r} is not valid UTF-8 (byte {raw[error.start]:#04x} at offset "
            f"{error.start}); names must be UTF-8") from None


def encodeBatchMessage(lines: list[str], source: str | None = None) -> bytes:
    """Body of one custom-metrics queue message carrying `lines`."""
    message: dict[str, object] = {"protocol": PROTOCOL_PLAIN, "data": lines}
    if source is not None:
        message["source"] = source
    return json.dumps(message).encode("utf-8")


def decodeBatchMessage(body: bytes, maxBytes: int = DEFAULT_MAX_BYTES,
                       maxDepth: int = DEFAULT_MAX_DEPTH) -> tuple[list[str], str | None]:
    """(lines, source) of a custom-metrics queue message; InvalidInputError naming the problem
    when it is larger than `maxBytes`, nests deeper than `maxDepth` (both checked before
    parsing) or is not JSON ``{"protocol": "plain", "data": [str, ...]}``."""
    try:
        message = loads_bounded(body, max_bytes=maxBytes, max_depth=maxDepth)
    except MessageLimitError as error:
        raise InvalidInputError(str(error)) from None
    if not isinstance(message, dict):
        raise InvalidInputError(f"message body {body[:120]!r} is not a JSON object")
    protocol = message.get("protocol")
    if protocol != PROTOCOL_PLAIN:
        raise InvalidInputError(f"message protocol {protocol!r} is not supported (only 'plain')")
    data = message.get("data")
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise InvalidInputError(
            f"message 'data' must be a list of strings, got {str(data)[:120]!r}")
    source = message.get("source")
    return data, source if isinstance(source, str) else None
