"""Pure logic of influxhtm: quoting, name checks, time conversion, aggregation parsing and
the merge on time (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from influxhtm.aggregation import Aggregation, durationSeconds, parseAggregation
from influxhtm.combined import mergeOnTime
from influxhtm.errors import InfluxHtmInputError, InvalidNameError
from influxhtm.influxql import (
    checkName,
    fromEpochMicros,
    quoteIdent,
    quoteLiteral,
    timeLiteral,
    toEpochMicros,
)


def test_quote_ident_escapes_quotes_backslashes_and_newlines():
    assert quoteIdent('cpu') == '"cpu"'
    assert quoteIdent('a"b') == '"a\\"b"'
    assert quoteIdent("a\\b") == '"a\\\\b"'
    assert quoteIdent("a\nb") == '"a\\nb"'
    # A single quote needs no escape inside double quotes.
    assert quoteIdent("it's") == '"it\'s"'
    with pytest.raises(InvalidNameError, match="non-empty"):
        quoteIdent("")


def test_quote_literal_escapes_single_quotes():
    assert quoteLiteral("x' OR 1=1; DROP DATABASE d --") == "'x\\' OR 1=1; DROP DATABASE d --'"
    assert quoteLiteral('say "hi"') == "'say \"hi\"'"
    assert quoteLiteral("back\\") == "'back\\\\'"
    with pytest.raises(InvalidNameError):
        quoteLiteral(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ['Frönt "door"', "it's a room, =1", "温度 センサー", "a;b"])
def test_check_name_accepts_quotes_spaces_and_unicode(name):
    assert checkName("component", name) == name


@pytest.mark.parametrize("name, reason", [
    ("", "empty"), ("a\\b", "backslash"), ("line\nbreak", "control"), (5, "string"),
])
def test_check_name_rejects_unstorable_names(name, reason):
    with pytest.raises(InvalidNameError, match=reason):
        checkName("component", name)


def test_times_convert_exactly_to_and_from_epoch_micros():
    aware = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    naive_utc = datetime(2024, 3, 1, 10, 30, 15, 123456)
    micros = toEpochMicros(aware)
    assert micros == toEpochMicros(naive_utc) == 1709289015123456
    assert fromEpochMicros(micros) == naive_utc.replace(tzinfo=UTC)
    assert toEpochMicros(1709289015) == 1709289015 * 1_000_000
    assert toEpochMicros(1709289015.5) == 1709289015_500_000
    assert toEpochMicros("2024-03-01T10:30:15.123456+00:00") == micros
    assert timeLiteral(1) == "1000000000"


@pytest.mark.parametrize("bad", [True, float("nan"), "yesterday", object()])
def test_bad_times_are_rejected_with_their_name(bad):
    with pytest.raises(InfluxHtmInputError, match="since"):
        toEpochMicros(bad, "since")


def test_aggregation_specs():
    assert parseAggregation(None) is None
    assert parseAggregation("10m") == Aggregation("mean", "10m")
    assert parseAggregation({"period": "1h"}) == Aggregation("mean", "1h")
    assert parseAggregation({"method": "MAX", "period": "30s"}) == Aggregation("max", "30s")
    assert Aggregation("mean", "10m").selectField("value") == 'mean("value") AS "value"'
    assert Aggregation("sum", "1h30m").seconds == 5400
    assert durationSeconds("1w") == 604800


@pytest.mark.parametrize("spec, message", [
    ("10 minutes", "not an InfluxQL duration"),
    ("0m", "longer than zero"),
    ("10m); DROP DATABASE x; --", "not an InfluxQL duration"),
    ({"method": "mean"}, "needs a 'period'"),
    ({"method": "drop", "period": "10m"}, "not one of"),
    ({"period": "10m", "fill": "none"}, "unknown keys"),
    (42, "period string"),
])
def test_bad_aggregations_are_rejected(spec, message):
    with pytest.raises(InfluxHtmInputError, match=message):
        parseAggregation(spec)


def test_merge_on_time_is_an_outer_join_sorted_by_time():
    t = [datetime(2024, 1, 1, 0, i, tzinfo=UTC) for i in range(4)]
    sensor = [{"time": t[0], "value": 1.0}, {"time": t[2], "value": 3.0},
              {"time": t[1], "value": 2.0}]
    results = [{"time": t[1], "anomalyScore": 0.5, "anomalyLikelihood": 0.6},
               {"time": t[3], "anomalyScore": 0.1, "anomalyLikelihood": 0.2,
                "prediction": 9.0}]
    data = mergeOnTime("door temp", sensor, results, modelId="m1")
    assert data.times() == t
    assert data.column("value") == [1.0, 2.0, 3.0, None]
    assert data.column("anomalyScore") == [None, 0.5, None, 0.1]
    assert data.column("prediction") == [None, None, None, 9.0]
    assert data.toDicts()[1] == {"time": t[1], "value": 2.0, "anomalyScore": 0.5,
                                 "anomalyLikelihood": 0.6, "prediction": None}
    with pytest.raises(KeyError, match="columns are"):
        data.column("nope")
