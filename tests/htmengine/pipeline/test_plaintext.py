"""Parsing of graphite plaintext lines and of custom-metrics queue messages (pure logic)."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from htmengine.exceptions import InvalidInputError
from htmengine.pipeline.plaintext import (
    MAX_EPOCH_SECONDS,
    decodeBatchMessage,
    encodeBatchMessage,
    parsePlaintext,
)


def test_parse_valid_line() -> None:
    sample = parsePlaintext("cpu.user 12.5 1430000000\n")
    assert sample.metricName == "cpu.user"
    assert sample.value == 12.5
    assert sample.timestamp == datetime(2015, 4, 25, 22, 13, 20)


def test_parse_truncates_fractional_seconds_and_accepts_bytes() -> None:
    assert parsePlaintext(b"m -3e2 1430000000.9").timestamp == datetime(2015, 4, 25, 22, 13, 20)
    assert parsePlaintext(b"m -3e2 1430000000.9").value == -300.0


@pytest.mark.parametrize("line, fragment", [
    ("only two", "3 fields"),
    ("a b c d", "3 fields"),
    ("", "3 fields"),
    ("m abc 1430000000", "value 'abc'"),
    ("m nan 1430000000", "not a finite number"),
    ("m inf 1430000000", "not a finite number"),
    ("m 1e999 1430000000", "not a finite number"),
    ("m " + "9" * 400 + " 1430000000", "not a finite number"),
    ("m 1 yesterday", "timestamp 'yesterday'"),
    ("m 1 -5", "unix time"),
    (f"m 1 {MAX_EPOCH_SECONDS + 1}", "unix time"),
    ("m 1 1e30", "unix time"),
    ("m 1 nan", "unix time"),
    ("x" * 256 + " 1 1430000000", "longer than 255"),
    ("bad\x01name 1 1430000000", "control characters"),
])
def test_parse_rejects_malformed_lines_naming_them(line: str, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        parsePlaintext(line)


def test_batch_message_round_trip_with_and_without_source() -> None:
    body = encodeBatchMessage(["a 1 2", "b 3 4"], "tcp:127.0.0.1:5000")
    assert json.loads(body) == {"protocol": "plain", "data": ["a 1 2", "b 3 4"],
                                "source": "tcp:127.0.0.1:5000"}
    assert decodeBatchMessage(body) == (["a 1 2", "b 3 4"], "tcp:127.0.0.1:5000")
    plain = json.dumps({"protocol": "plain", "data": ["a 1 2"]}).encode()
    assert decodeBatchMessage(plain) == (["a 1 2"], None)


@pytest.mark.parametrize("body, fragment", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"protocol": "pickle", "data": []}).encode(), "protocol 'pickle'"),
    (json.dumps({"protocol": "plain", "data": "a 1 2"}).encode(), "list of strings"),
    (json.dumps({"protocol": "plain", "data": [1]}).encode(), "list of strings"),
])
def test_decode_rejects_malformed_messages(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        decodeBatchMessage(body)
