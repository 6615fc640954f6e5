"""Model swapper message forms: wire round trips and validation errors naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from htmengine.model_swapper.errors import InvalidMessageError
from htmengine.model_swapper.messages import (
    BatchPackager,
    ModelCommand,
    ModelCommandResult,
    ModelInferenceResult,
    ModelInputRow,
    decodeDatetime,
    encodeDatetime,
    packRequestMessage,
    packResultMessage,
    unpackRequestMessage,
    unpackResultMessage,
)


def test_request_message_round_trip_keeps_order_and_datetimes() -> None:
    ts = datetime(2015, 3, 7, 13, 45, 10, 123456)
    requests = [
        ModelCommand("cmd-1", "defineModel", {"modelConfig": {"a": 1}, "inferenceArgs": {},
                                              "inputRecordSchema": [["c0", "datetime", "T"]]}),
        ModelInputRow(1, (ts, 3.25)),
        ModelInputRow(2, [ts + timedelta(minutes=5), None]),
        ModelCommand(7, "deleteModel"),
    ]
    body = packRequestMessage("batch-abc", requests)
    assert body.startswith(b"batch-abc\n")
    decoded = unpackRequestMessage(body)
    assert decoded.batchID == "batch-abc"
    assert decoded.objects == (
        requests[0],
        ModelInputRow(1, [ts, 3.25]),
        ModelInputRow(2, [ts + timedelta(minutes=5), None]),
        requests[3],
    )


def test_input_row_wire_form_matches_the_original() -> None:
    ts = datetime(1970, 1, 2, 0, 0, 1, 5)
    state = ModelInputRow(9, (ts, 2)).toState()
    assert state == ["i", 9, [[86401, 5], 2], [0]]
    body = packRequestMessage("b", [ModelInputRow(9, (ts, 2))])
    assert json.loads(body.split(b"\n", 1)[1]) == [state]


def test_result_message_round_trip() -> None:
    results = [
        ModelCommandResult("c", "defineModel", 0),
        ModelCommandResult("c2", "cloneModel", 3, errorMessage="no such model"),
        ModelInferenceResult(5, 0, anomalyScore=0.25, multiStepBestPredictions={"1": 3.0}),
        ModelInferenceResult(6, 1, errorMessage="boom"),
    ]
    body = packResultMessage("model-1", results)
    assert body.split(b"\n", 1)[0] == b"model-1"
    items = json.loads(body.split(b"\n", 1)[1])
    assert items[2] == ["iRv2", 5, 0, 0.25, None, {"1": 3.0}]
    assert items[1] == ["mcR", "c2", "cloneModel", 3, None, "no such model"]
    decoded = unpackResultMessage(body)
    assert decoded.modelID == "model-1"
    assert decoded.objects == tuple(results)


def test_legacy_v1_inference_result_is_decoded() -> None:
    decoded = BatchPackager.unmarshal(json.dumps([["iR", 3, 0, 0.5, None]]))
    assert decoded == (ModelInferenceResult(3, 0, anomalyScore=0.5),)


def test_datetime_encoding_is_lossless_including_aware_and_pre_epoch() -> None:
    for value in (datetime(2020, 2, 29, 23, 59, 59, 999999), datetime(1969, 12, 31, 23, 0, 0, 1)):
        assert decodeDatetime(encodeDatetime(value)) == value
    aware = datetime(2020, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert decodeDatetime(encodeDatetime(aware)) == datetime(2020, 1, 1, 10, 0)
    assert encodeDatetime(datetime(2020, 1, 1, tzinfo=UTC)) == [1577836800, 0]


@pytest.mark.parametrize(("factory", "field"), [
    (lambda: ModelCommandResult("c", "m", 0, errorMessage="x"), "errorMessage"),
    (lambda: ModelCommandResult("c", "m", 2), "errorMessage"),
    (lambda: ModelCommandResult("c", "m", 2, args={}, errorMessage="e"), "args"),
    (lambda: ModelCommandResult("c", "m", "0"), "status"),
    (lambda: ModelInferenceResult(1, 0), "anomalyScore"),
    (lambda: ModelInferenceResult(1, 0, anomalyScore=float("nan")), "anomalyScore"),
    (lambda: ModelInferenceResult(1, 0, anomalyScore=0.1, errorMessage="e"), "errorMessage"),
    (lambda: ModelInferenceResult(1, 1, errorMessage=""), "errorMessage"),
    (lambda: ModelInferenceResult(1, 1, errorMessage="e", anomalyScore=0.5), "anomalyScore"),
    (lambda: ModelInferenceResult(True, 0, anomalyScore=0.5), "rowID"),
    (lambda: ModelInputRow(1, []), "data"),
    (lambda: ModelInputRow(1, [object()]), "data[0]"),
    (lambda: ModelInputRow("a\nb", [1.0]), "rowID"),
    (lambda: ModelCommand("c", ""), "method"),
    (lambda: ModelCommand("c", "defineModel", ["not", "a", "dict"]), "args"),
])
def test_validation_errors_name_the_field(factory, field: str) -> None:
    with pytest.raises(InvalidMessageError, match=field.replace("[", r"\[").replace("]", r"\]")):
        factory()


@pytest.mark.parametrize(("body", "fragment"), [
    (b"no-newline-here", "newline after its batchID"),
    (b"\n[]", "empty batchID"),
    (b"b1\n{not json", "not valid JSON"),
    (b"b1\n{}", "must be a JSON list"),
    (b'b1\n[["zz", 1]]', "unknown signature 'zz'"),
    (b'b1\n[["i", 1, [1.0]]]', "has 4 elements"),
    (b'b1\n[["i", 1, [[1, 2], 1.0], [5]]]', "datetimeIndexes entry 5"),
    (b'b1\n[["i", 1, [[1], 1.0], [0]]]', r"data\[0\] must be \[epochSeconds, microseconds\]"),
    (b'b1\n[["mcR", "c", "m", 0, null, null]]', "not a request"),
    (b"\xff\xfe\n[]", "not UTF-8"),
    (b"b1\n" + b"[" * 100000 + b"]" * 100000, "deeper than the limit of 32"),
    (b'b1\n[["i", 1, [[301824220950, 0], 1.0], [0]]]', "outside the years 1..9999"),
])
def test_malformed_request_messages_are_rejected_with_a_reason(body: bytes, fragment: str) -> None:
    with pytest.raises(InvalidMessageError, match=fragment):
        unpackRequestMessage(body)


def test_result_message_rejects_request_items_and_packers_reject_wrong_kinds() -> None:
    with pytest.raises(InvalidMessageError, match="not a result"):
        unpackResultMessage(b'm\n[["mc", "c", "defineModel", null]]')
    with pytest.raises(InvalidMessageError, match=r"requests\[0\]"):
        packRequestMessage("b", [ModelInferenceResult(1, 0, anomalyScore=0.0)])
    with pytest.raises(InvalidMessageError, match=r"results\[1\]"):
        packResultMessage("m", [ModelCommandResult("c", "x", 0), ModelInputRow(1, [1.0])])
    with pytest.raises(InvalidMessageError, match="batchID"):
        packRequestMessage("a\nb", [ModelInputRow(1, [1.0])])
