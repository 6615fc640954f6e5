"""Transaction helpers shared by the query modules.

Rules (SQLAlchemy 2.x has no autocommit):

* A write query function given a connection *without* an open transaction opens its own
  transaction, commits it, and is retried as a whole on transient MySQL errors (lost
  connection, deadlock, lock wait timeout) by `nta_utils.db.retry_on_transient_error`.
* Given a connection that already has a transaction open (`engine.begin()`, `conn.begin()`,
  or one auto-begun by an earlier statement on that connection), it joins that transaction,
  runs once, and lets transient errors propagate: the caller commits, and the caller retries
  its whole transaction (e.g. a function decorated with `retry_on_transient_error` that does
  `with engine.begin() as conn: ...`), because MySQL discards the whole transaction on a
  deadlock or a lost connection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from htmengine.exceptions import InvalidArgumentTypeError, InvalidInputError
from nta_utils.db import retry_on_transient_error

_P = ParamSpec("_P")
_R = TypeVar("_R")
# A row and a result of any columns (SQLAlchemy 2.1 types rows by their column tuple).
AnyRow = sa.Row[*tuple[Any, ...]]
AnyResult = sa.CursorResult[*tuple[Any, ...]]


def _checkConnection(conn: object) -> sa.Connection:
    if not isinstance(conn, sa.Connection):
        raise InvalidArgumentTypeError(f"conn must be a sqlalchemy.Connection, got {type(conn).__name__}")
    return conn


@contextmanager
def atomic(conn: sa.Connection) -> Iterator[sa.Connection]:
    """Run the block in the caller's open transaction, or else in a new transaction that is
    committed on success and rolled back on error."""
    _checkConnection(conn)
    if conn.in_transaction():
        yield conn
    else:
        with conn.begin():
            yield conn


def writeQuery(
    fn: Callable[Concatenate[sa.Connection, _P], _R],
) -> Callable[Concatenate[sa.Connection, _P], _R]:
    """Decorator for write query functions taking `conn` first: retried on transient errors
    when they own the transaction, run once inside a caller's transaction (see module doc).
    The function itself must do its work inside `atomic(conn)`."""
    retrying = retry_on_transient_error(fn)

    @functools.wraps(fn)
    def wrapper(conn: sa.Connection, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if _checkConnection(conn).in_transaction():
            return fn(conn, *args, **kwargs)
        return retrying(conn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature


def runInTransaction(engine: sa.Engine,
                     fn: Callable[Concatenate[sa.Connection, _P], _R],
                     *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Call `fn(conn, *args, **kwargs)` in a new transaction on `engine`, committed when `fn`
    returns; on a transient MySQL error the whole transaction is rolled back and run again
    (see `nta_utils.db.retry_on_transient_error`). `fn` must be safe to run again."""

    @retry_on_transient_error
    def attempt() -> _R:
        with engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    return attempt()


def selectFields(fields: object, default: sa.Table) -> list[Any]:
    """Columns to select: `fields` (a table, a column or a sequence of them) or `default`."""
    if fields is None:
        return [default]
    if isinstance(fields, sa.Table | sa.ColumnElement):
        return [fields]
    if isinstance(fields, str | bytes):
        raise InvalidArgumentTypeError(f"fields must be SQLAlchemy columns, got the string {fields!r}")
    selected: list[Any] = list(fields)  # type: ignore[call-overload]
    if not selected:
        return [default]
    return selected


def checkColumnNames(table: sa.Table, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` after checking that every key names a column of `table`."""
    if not isinstance(fields, dict) or not fields:
        raise InvalidInputError(f"fields must be a non-empty dict of {table.name} column values, "
                         f"got {fields!r}")
    unknown = [name for name in fields if name not in table.c]
    if unknown:
        raise InvalidInputError(f"Unknown {table.name} column(s) {unknown}; columns are "
                         f"{list(table.c.keys())}")
    return fields
