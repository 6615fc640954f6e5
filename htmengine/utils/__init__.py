"""Small helpers of the original engine's ``htmengine.utils``: JSON encoding that handles
datetimes and iterables (`jsonEncode` / `jsonDecode`), JSON-schema validation (`validate`),
`roundUpDatetime` and `createGuid`."""

from __future__ import annotations

import datetime
import functools
import json
import math
import uuid
from typing import Any

import jsonschema

from htmengine.exceptions import InvalidInputError

__all__ = ["createGuid", "jsonDecode", "jsonEncode", "roundUpDatetime", "validate"]


def createGuid() -> str:
    """A new globally unique identifier (32 hex digits)."""
    return uuid.uuid4().hex


class _JSONEncoder(json.JSONEncoder):
    """Encodes iterables (tuples, result rows, generators) as lists and datetimes as
    ``str(datetime)`` ("YYYY-mm-dd HH:MM:SS[.ffffff]"), as the original did."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime):
            return str(o)
        try:
            iterable = iter(o)
        except TypeError:
            pass
        else:
            return list(iterable)
        if hasattr(o, "_jsonEncoder"):
            return o._jsonEncoder()
        return super().default(o)


def jsonEncode(obj: Any) -> str:
    """`obj` as indented JSON; datetimes become "YYYY-mm-dd HH:MM:SS" strings."""
    return json.dumps(obj, cls=_JSONEncoder, indent=2)


def jsonDecode(text: str | bytes) -> Any:
    """Parse JSON text (strings are already str in Python 3)."""
    return json.loads(text)


def roundUpDatetime(dt: datetime.datetime, periodSec: float) -> datetime.datetime:
    """Round `dt` up to the next multiple of `periodSec` within its hour (1:51:xx -> 1:55:00
    for 300 s; 1:55:00.0 stays)."""
    seconds = dt.minute * 60 + dt.second + dt.microsecond / 1000000.0
    seconds = math.ceil(seconds / float(periodSec)) * periodSec
    return dt.replace(minute=0, second=0, microsecond=0) + datetime.timedelta(seconds=seconds)


@functools.cache
def _validatorClass(schemaText: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schemaText)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    cls.check_schema(schema)
    return cls(schema)


def validate(obj: Any, schema: dict[str, Any]) -> None:
    """Validate `obj` against the JSON schema `schema`.

    :raises InvalidInputError: (a ValueError) naming the first failing field and why
    """
    validator = _validatorClass(json.dumps(schema, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise InvalidInputError(f"document{where}: {error.message}")
