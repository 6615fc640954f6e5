"""Model swapper message forms: requests and results, and their wire packaging.

Wire format (the original engine's):

* request message: ``batchId + "\\n" + JSON list of request items``
* result message:  ``modelId + "\\n" + JSON list of result items``
* items (JSON lists, first element is the signature):
    - ``["mc", commandID, method, args]``                                   ModelCommand
    - ``["mcR", commandID, method, status, args, errorMessage]``           ModelCommandResult
    - ``["i", rowID, data, datetimeIndexes]``                              ModelInputRow
      (datetimes in ``data`` as ``[epochSeconds, microseconds]``; their positions listed
      in ``datetimeIndexes``)
    - ``["iRv2", rowID, status, anomalyScore, errorMessage, multiStepBestPredictions]``
      ModelInferenceResult (the legacy ``["iR", rowID, status, anomalyScore, errorMessage]``
      is still decoded)

Status 0 means success and forbids an error message; a non-zero status requires one. Every
validation error is an `InvalidMessageError` naming the offending field; the JSON is decoded
with size and nesting limits (`nta_utils.bounded_json`), so no body can exhaust the stack.
"""

from __future__ import annotations

import calendar
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from htmengine.model_swapper.errors import InvalidMessageError
from nta_utils.bounded_json import loads_bounded

_EPOCH = datetime(1970, 1, 1)

Id = str | int


def _check_id(value: Any, fieldName: str) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidMessageError(f"{fieldName} must be a string or an integer, got {value!r}")
    if isinstance(value, str) and "\n" in value:
        raise InvalidMessageError(f"{fieldName} must not contain a newline: {value!r}")


def _check_status(status: Any, fieldName: str) -> int:
    if isinstance(status, bool) or not isinstance(status, numbers.Integral):
        raise InvalidMessageError(f"{fieldName} must be an integer, got {status!r}")
    return int(status)


def _check_error_message(status: int, errorMessage: Any, owner: str) -> None:
    if status == 0:
        if errorMessage is not None:
            raise InvalidMessageError(
                f"{owner}.errorMessage must be None when status is 0, got {errorMessage!r}")
    elif not isinstance(errorMessage, str) or not errorMessage:
        raise InvalidMessageError(
            f"{owner}.errorMessage must be a non-empty string when status is {status}, "
            f"got {errorMessage!r}")


def encodeDatetime(value: datetime) -> list[int]:
    """Lossless ``[epochSeconds, microseconds]`` of a naive-UTC (or aware) datetime."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return [calendar.timegm(value.timetuple()), value.microsecond]


def decodeDatetime(state: Any, fieldName: str = "datetime") -> datetime:
    """Inverse of `encodeDatetime`: a naive UTC datetime."""
    if (not isinstance(state, list | tuple) or len(state) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in state)
            or not 0 <= state[1] < 1_000_000):
        raise InvalidMessageError(
            f"{fieldName} must be [epochSeconds, microseconds] integers, got {state!r}")
    try:
        return _EPOCH + timedelta(seconds=state[0], microseconds=state[1])
    except OverflowError:
        raise InvalidMessageError(
            f"{fieldName} {state!r} is outside the years 1..9999") from None


@dataclass
class ModelCommand:
    """A command for a model: ``defineModel``, ``deleteModel`` or ``cloneModel``."""

    commandID: Id
    method: str
    args: dict[str, Any] | None = None

    SIGNATURE = "mc"

    def __post_init__(self) -> None:
        _check_id(self.commandID, "ModelCommand.commandID")
        if not isinstance(self.method, str) or not self.method:
            raise InvalidMessageError(
                f"ModelCommand.method must be a non-empty string, got {self.method!r}")
        if self.args is not None and not isinstance(self.args, dict):
            raise InvalidMessageError(
                f"ModelCommand.args must be a dict or None, got {self.args!r}")

    def toState(self) -> list[Any]:
        """The JSON-able wire item."""
        return [self.SIGNATURE, self.commandID, self.method, self.args]


@dataclass
class ModelCommandResult:
    """The result of a ModelCommand; `args` only on success, `errorMessage` only on error."""

    commandID: Id
    method: str
    status: int
    args: dict[str, Any] | None = None
    errorMessage: str | None = None

    SIGNATURE = "mcR"

    def __post_init__(self) -> None:
        _check_id(self.commandID, "ModelCommandResult.commandID")
        if not isinstance(self.method, str) or not self.method:
            raise InvalidMessageError(
                f"ModelCommandResult.method must be a non-empty string, got {self.method!r}")
        self.status = _check_status(self.status, "ModelCommandResult.status")
        _check_error_message(self.status, self.errorMessage, "ModelCommandResult")
        if self.args is not None and not isinstance(self.args, dict):
            raise InvalidMessageError(
                f"ModelCommandResult.args must be a dict or None, got {self.args!r}")
        if self.status != 0 and self.args is not None:
            raise InvalidMessageError(
                f"ModelCommandResult.args must be None when status is {self.status}")

    def toState(self) -> list[Any]:
        """The JSON-able wire item."""
        return [self.SIGNATURE, self.commandID, self.method, self.status, self.args,
                self.errorMessage]


_ROW_VALUE_TYPES = (str, int, float, datetime, type(None))


@dataclass
class ModelInputRow:
    """One input record for a model: `data` ordered as the model's inputRecordSchema
    (htmengine: ``(timestamp, value)``)."""

    rowID: Id
    data: Sequence[Any]

    SIGNATURE = "i"

    def __post_init__(self) -> None:
        _check_id(self.rowID, "ModelInputRow.rowID")
        if not isinstance(self.data, list | tuple) or not self.data:
            raise InvalidMessageError(
                f"ModelInputRow.data must be a non-empty list or tuple, got {self.data!r}")
        for index, item in enumerate(self.data):
            if isinstance(item, bool) or not isinstance(item, _ROW_VALUE_TYPES + (numbers.Real,)):
                raise InvalidMessageError(
                    f"ModelInputRow.data[{index}] has unsupported type "
                    f"{type(item).__name__}: {item!r}")

    def toState(self) -> list[Any]:
        """The JSON-able wire item (datetimes encoded, their indexes listed)."""
        encoded: list[Any] = []
        datetimeIndexes: list[int] = []
        for index, item in enumerate(self.data):
            if isinstance(item, datetime):
                encoded.append(encodeDatetime(item))
                datetimeIndexes.append(index)
            elif isinstance(item, numbers.Integral):
                encoded.append(int(item))
            elif isinstance(item, numbers.Real):
                encoded.append(float(item))
            else:
                encoded.append(item)
        return [self.SIGNATURE, self.rowID, encoded, datetimeIndexes]


@dataclass
class ModelInferenceResult:
    """The model's output for one input row: an anomaly score on success, else an error."""

    rowID: Id
    status: int
    errorMessage: str | None = None
    anomalyScore: float | None = None
    multiStepBestPredictions: dict[str, Any] | None = field(default=None)

    SIGNATURE = "iRv2"

    def __post_init__(self) -> None:
        _check_id(self.rowID, "ModelInferenceResult.rowID")
        self.status = _check_status(self.status, "ModelInferenceResult.status")
        _check_error_message(self.status, self.errorMessage, "ModelInferenceResult")
        if self.status == 0:
            if (isinstance(self.anomalyScore, bool)
                    or not isinstance(self.anomalyScore, numbers.Real)
                    or math.isnan(float(self.anomalyScore))):
                raise InvalidMessageError(
                    "ModelInferenceResult.anomalyScore must be a number when status is 0, "
                    f"got {self.anomalyScore!r}")
            self.anomalyScore = float(self.anomalyScore)
            if (self.multiStepBestPredictions is not None
                    and not isinstance(self.multiStepBestPredictions, dict)):
                raise InvalidMessageError(
                    "ModelInferenceResult.multiStepBestPredictions must be a dict or None, "
                    f"got {self.multiStepBestPredictions!r}")
        else:
            if self.anomalyScore is not None:
                raise InvalidMessageError(
                    "ModelInferenceResult.anomalyScore must be None when status is "
                    f"{self.status}, got {self.anomalyScore!r}")
            if self.multiStepBestPredictions is not None:
                raise InvalidMessageError(
                    "ModelInferenceResult.multiStepBestPredictions must be None when status "
                    f"is {self.status}")

    def toState(self) -> list[Any]:
        """The JSON-able wire item."""
        return [self.SIGNATURE, self.rowID, self.status, self.anomalyScore, self.errorMessage,
                self.multiStepBestPredictions]


RequestItem = ModelCommand | ModelInputRow
ResultItem = ModelCommandResult | ModelInferenceResult


def _expect_len(state: list[Any], length: int, where: str) -> None:
    if len(state) != length:
        raise InvalidMessageError(
            f"{where}: a {state[0]!r} item has {length} elements, got {len(state)}: {state!r}")


def itemFromState(state: Any, where: str = "item") -> RequestItem | ResultItem:
    """Decode one wire item into its dataclass; `where` names the item in error messages."""
    if not isinstance(state, list) or not state or not isinstance(state[0], str):
        raise InvalidMessageError(
            f"{where} must be a list starting with a signature string, got {state!r}")
    signature = state[0]
    if signature == ModelCommand.SIGNATURE:
        _expect_len(state, 4, where)
        return ModelCommand(commandID=state[1], method=state[2], args=state[3])
    if signature == ModelCommandResult.SIGNATURE:
        _expect_len(state, 6, where)
        return ModelCommandResult(commandID=state[1], method=state[2], status=state[3],
                                  args=state[4], errorMessage=state[5])
    if signature == ModelInputRow.SIGNATURE:
        _expect_len(state, 4, where)
        data, datetimeIndexes = state[2], state[3]
        if not isinstance(data, list):
            raise InvalidMessageError(f"{where}: input row data must be a list, got {data!r}")
        if not isinstance(datetimeIndexes, list):
            raise InvalidMessageError(
                f"{where}: datetimeIndexes must be a list, got {datetimeIndexes!r}")
        data = list(data)
        for index in datetimeIndexes:
            if not isinstance(index, int) or isinstance(index, bool) or not (
                    0 <= index < len(data)):
                raise InvalidMessageError(
                    f"{where}: datetimeIndexes entry {index!r} is not an index into data")
            data[index] = decodeDatetime(data[index], f"{where}: data[{index}]")
        return ModelInputRow(rowID=state[1], data=data)
    if signature == ModelInferenceResult.SIGNATURE:
        _expect_len(state, 6, where)
        return ModelInferenceResult(rowID=state[1], status=state[2], anomalyScore=state[3],
                                    errorMessage=state[4], multiStepBestPredictions=state[5])
    if signature == "iR":  # legacy v1 result, without multi-step predictions
        _expect_len(state, 5, where)
        return ModelInferenceResult(rowID=state[1], status=state[2], anomalyScore=state[3],
                                    errorMessage=state[4])
    raise InvalidMessageError(f"{where} has unknown signature {signature!r}")


class BatchPackager:
    """Serializer of an ordered batch of request or result items (a JSON list, no newlines)."""

    @staticmethod
    def marshal(batch: Sequence[RequestItem | ResultItem]) -> str:
        """JSON text of the items' wire states, in order."""
        if isinstance(batch, str | bytes) or not isinstance(batch, Sequence):
            raise InvalidMessageError(f"batch must be a sequence of items, got {batch!r}")
        states = []
        for index, item in enumerate(batch):
            toState = getattr(item, "toState", None)
            if toState is None:
                raise InvalidMessageError(
                    f"batch[{index}] is not a request or result item: {item!r}")
            states.append(toState())
        return json.dumps(states, separators=(",", ":"))

    @staticmethod
    def unmarshal(batchState: str) -> tuple[RequestItem | ResultItem, ...]:
        """The items of a JSON batch, in order."""
        try:
            states = loads_bounded(batchState, what="batch state")
        except (ValueError, TypeError) as exc:
            raise InvalidMessageError(f"batch state is not valid JSON: {exc}") from exc
        if not isinstance(states, list):
            raise InvalidMessageError(f"batch state must be a JSON list, got {states!r}")
        return tuple(itemFromState(state, f"batch item [{index}]")
                     for index, state in enumerate(states))


def _split_head(message: bytes | str, headName: str) -> tuple[str, str]:
    if isinstance(message, bytes | bytearray):
        try:
            message = bytes(message).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMessageError(f"message is not UTF-8 text: {exc}") from exc
    if not isinstance(message, str):
        raise InvalidMessageError(f"message must be bytes or str, got {type(message).__name__}")
    head, sep, body = message.partition("\n")
    if not sep:
        raise InvalidMessageError(f"message has no newline after its {headName}")
    if not head:
        raise InvalidMessageError(f"message has an empty {headName}")
    return head, body


class RequestBatch(NamedTuple):
    """A decoded request message."""

    batchID: str
    objects: tuple[RequestItem, ...]


class ResultBatch(NamedTuple):
    """A decoded result message."""

    modelID: str
    objects: tuple[ResultItem, ...]


def _pack(head: str, headName: str, items: Sequence[Any], allowed: tuple[type, ...],
          itemsName: str) -> bytes:
    """``head + "\\n" + JSON`` after checking the head and every item's type."""
    _check_id(head, headName)
    if not head:
        raise InvalidMessageError(f"{headName} must not be empty")
    for index, item in enumerate(items):
        if not isinstance(item, allowed):
            raise InvalidMessageError(
                f"{itemsName}[{index}] must be a {' or '.join(t.__name__ for t in allowed)}, "
                f"got {item!r}")
    return f"{head}\n{BatchPackager.marshal(items)}".encode()


def _unpack(message: bytes | str, headName: str, allowed: tuple[type, ...],
            what: str) -> tuple[str, tuple[Any, ...]]:
    """(head, items) of a message whose items must all be of the `allowed` types."""
    head, body = _split_head(message, headName)
    objects = BatchPackager.unmarshal(body)
    for index, item in enumerate(objects):
        if not isinstance(item, allowed):
            raise InvalidMessageError(
                f"{what} {head}: item [{index}] is a {type(item).__name__}, "
                f"not a {what.split()[0]}")
    return head, objects


_REQUEST_TYPES = (ModelCommand, ModelInputRow)
_RESULT_TYPES = (ModelCommandResult, ModelInferenceResult)


def packRequestMessage(batchID: str, requests: Sequence[RequestItem]) -> bytes:
    """``batchID + "\\n" + JSON`` request message body."""
    return _pack(batchID, "batchID", requests, _REQUEST_TYPES, "requests")


def unpackRequestMessage(message: bytes | str) -> RequestBatch:
    """Decode a request message; InvalidMessageError names what is wrong."""
    return RequestBatch(*_unpack(message, "batchID", _REQUEST_TYPES, "request batch"))


def packResultMessage(modelID: str, results: Sequence[ResultItem]) -> bytes:
    """``modelID + "\\n" + JSON`` result message body."""
    return _pack(modelID, "modelID", results, _RESULT_TYPES, "results")


def unpackResultMessage(message: bytes | str) -> ResultBatch:
    """Decode a result message; InvalidMessageError names what is wrong."""
    return ResultBatch(*_unpack(message, "modelID", _RESULT_TYPES, "result batch of model"))
