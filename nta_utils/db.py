"""MySQL/MariaDB plumbing: engine creation, retry on transient errors, database create/drop.

No application logic lives here; `htmengine.repository` builds on it.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

import pymysql
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import QueuePool

from nta_utils.errors import DatabaseError, InvalidArgumentError
from nta_utils.outage import Outage, outage

_log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")

# MySQL client/server error codes that mean "try the whole unit of work again".
CR_CONN_HOST_ERROR = 2003        # can't connect to server
CR_SERVER_GONE_ERROR = 2006      # server has gone away
CR_SERVER_LOST = 2013            # lost connection during query
ER_LOCK_WAIT_TIMEOUT = 1205      # lock wait timeout exceeded
ER_LOCK_DEADLOCK = 1213          # deadlock found, transaction rolled back
ER_CONNECTION_KILLED = 1927      # MariaDB: connection was killed
ER_CLIENT_INTERACTION_TIMEOUT = 4031  # MySQL 8: disconnected for inactivity

LOST_CONNECTION_CODES = frozenset(
    {CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ER_CONNECTION_KILLED,
     ER_CLIENT_INTERACTION_TIMEOUT})
TRANSIENT_ERROR_CODES = LOST_CONNECTION_CODES | {ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK}

DATABASE = "the database"


def database_outage() -> Outage:
    """The database's outage state in this process (one warning when lost, one when back)."""
    return outage(DATABASE)


DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_INITIAL_DELAY_SEC = 0.1
DEFAULT_MAX_DELAY_SEC = 2.0
DEFAULT_BACKOFF_FACTOR = 2.0

_DB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


def mysql_error_code(error: BaseException) -> int | None:
    """The MySQL error code carried by `error` (a SQLAlchemy DBAPIError or a PyMySQL error),
    or None when it carries none."""
    dbapi_error = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    if isinstance(dbapi_error, pymysql.err.MySQLError) and dbapi_error.args:
        code = dbapi_error.args[0]
        if isinstance(code, int):
            return code
    return None


def is_transient_error(error: BaseException) -> bool:
    """True when `error` is a lost connection, deadlock or lock wait timeout, i.e. the unit of
    work that raised it may succeed when run again from the start."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, sa_exc.DBAPIError | pymysql.err.MySQLError):
        return False
    return mysql_error_code(error) in TRANSIENT_ERROR_CODES


@overload
def retry_on_transient_error(fn: Callable[_P, _R]) -> Callable[_P, _R]: ...


@overload
def retry_on_transient_error(
    fn: None = None, *, max_attempts: int = ..., initial_delay: float = ...,
    max_delay: float = ..., backoff_factor: float = ...,
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def retry_on_transient_error(
    fn: Callable[_P, _R] | None = None,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    initial_delay: float = DEFAULT_INITIAL_DELAY_SEC,
    max_delay: float = DEFAULT_MAX_DELAY_SEC,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
) -> Any:
    """Decorator: call `fn` again when it raises a transient MySQL error (lost connection
    2003/2006/2013, deadlock 1213, lock wait timeout 1205; also MariaDB 1927 and MySQL 4031
    disconnects), sleeping `initial_delay`, then `backoff_factor` times longer each time (at most
    `max_delay`), for at most `max_attempts` calls in all. Each retry is logged. When the last
    attempt fails, raises `DatabaseError` chained to the transient error. Other errors pass
    through unchanged on the first occurrence.

    The decorated function must be safe to run again: it must open (and commit) its own
    transaction, since a deadlock or a lost connection discards the whole transaction.

    Use bare (`@retry_on_transient_error`) or with options
    (`@retry_on_transient_error(max_attempts=3)`).
    """
    if max_attempts < 1:
        raise InvalidArgumentError(f"max_attempts must be >= 1, got {max_attempts!r}")
    if initial_delay < 0 or max_delay < 0 or backoff_factor < 1:
        raise InvalidArgumentError(
            f"retry delays must be non-negative and backoff_factor >= 1, got "
            f"initial_delay={initial_delay!r}, max_delay={max_delay!r}, "
            f"backoff_factor={backoff_factor!r}")

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            delay = initial_delay
            for attempt in range(1, max_attempts + 1):
                try:
                    result = func(*args, **kwargs)
                except (sa_exc.DBAPIError, pymysql.err.MySQLError) as error:
                    if not is_transient_error(error):
                        raise
                    code = mysql_error_code(error)
                    lost = code in LOST_CONNECTION_CODES or (
                        isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated)
                    if lost:
                        database_outage().lost(error)
                    if attempt == max_attempts:
                        raise DatabaseError(
                            f"{func.__qualname__} failed after {max_attempts} attempts on "
                            f"transient MySQL error {code}: {error}") from error
                    _log.log(logging.DEBUG if lost else logging.WARNING,
                             "Transient MySQL error %s in %s (attempt %d of %d); retrying in "
                             "%.2fs: %s", code, func.__qualname__, attempt, max_attempts, delay,
                             _short(error))
                    time.sleep(delay)
                    delay = min(max_delay, delay * backoff_factor)
                else:
                    database_outage().restored()
                    return result
            raise AssertionError("unreachable")  # pragma: no cover

        wrapper.retry_max_attempts = max_attempts  # type: ignore[attr-defined]
        return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate


def _short(error: BaseException, limit: int = 300) -> str:
    text = str(error).splitlines()[0] if str(error) else repr(error)
    return text if len(text) <= limit else text[:limit] + "..."


def make_mysql_url(params: Mapping[str, Any]) -> sa.URL:
    """A `mysql+pymysql` URL from connection parameters: host, port, user, passwd (or
    password), and optionally db (or database). Values are escaped properly."""
    missing = [key for key in ("host", "user") if not params.get(key)]
    if missing:
        raise InvalidArgumentError(f"MySQL connection parameters lack {', '.join(missing)}: "
                         f"got keys {sorted(params)}")
    port = params.get("port")
    try:
        port_number = int(port) if port not in (None, "") else None
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"MySQL port must be an integer, got {port!r}") from None
    password = params.get("passwd", params.get("password")) or None
    database = params.get("db", params.get("database")) or None
    return sa.URL.create(
        "mysql+pymysql",
        username=str(params["user"]),
        password=password,
        host=str(params["host"]),
        port=port_number,
        database=database,
        query={"charset": "utf8mb4"},
    )


def create_mysql_engine(
    url_or_params: str | sa.URL | Mapping[str, Any],
    *,
    pool_size: int = 5,
    max_overflow: int = 20,
    pool_recycle: int = 179,
    pool_timeout: float = 30.0,
    **engine_kwargs: Any,
) -> sa.Engine:
    """A SQLAlchemy engine for MySQL/MariaDB through PyMySQL with a QueuePool that pings
    connections on checkout (`pool_pre_ping`) and recycles them after `pool_recycle` seconds.

    `url_or_params` is a URL (string or `sqlalchemy.URL`) or a mapping accepted by
    `make_mysql_url`. Other keyword arguments go to `sqlalchemy.create_engine`.
    """
    if isinstance(url_or_params, Mapping):
        url = make_mysql_url(url_or_params)
    else:
        url = sa.make_url(url_or_params)
        if url.drivername == "mysql":
            url = url.set(drivername="mysql+pymysql")
        if url.drivername != "mysql+pymysql":
            raise InvalidArgumentError(f"Expected a mysql+pymysql URL, got driver {url.drivername!r}")
    return sa.create_engine(
        url,
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=pool_recycle,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        **engine_kwargs,
    )


def _check_db_name(name: str) -> str:
    if not isinstance(name, str) or not _DB_NAME_PATTERN.match(name):
        raise InvalidArgumentError(
            f"Database name must be 1-64 characters of letters, digits, '_' or '$', "
            f"got {name!r}")
    return name


def _server_engine(server_url: str | sa.URL | Mapping[str, Any]) -> sa.Engine:
    if isinstance(server_url, Mapping):
        url = make_mysql_url({**server_url, "db": None, "database": None})
    else:
        url = sa.make_url(server_url).set(database=None)
        if url.drivername == "mysql":
            url = url.set(drivername="mysql+pymysql")
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


@retry_on_transient_error
def create_database_if_missing(server_url: str | sa.URL | Mapping[str, Any], name: str) -> bool:
    """Create database `name` (utf8mb4) on the server at `server_url` unless it exists
    (any database part of the URL is ignored). Returns True when it was created."""
    _check_db_name(name)
    engine = _server_engine(server_url)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT COUNT(*) FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = :name"), {"name": name}).scalar_one()
            if exists:
                return False
            conn.exec_driver_sql(
                f"CREATE DATABASE IF NOT EXISTS `{name}` "
                f"CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            conn.commit()
            return True
    finally:
        engine.dispose()


@retry_on_transient_error
def drop_database(server_url: str | sa.URL | Mapping[str, Any], name: str) -> bool:
    """Drop database `name` on the server at `server_url` if it exists. Returns True when a
    database was dropped."""
    _check_db_name(name)
    engine = _server_engine(server_url)
    try:
        with engine.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT COUNT(*) FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = :name"), {"name": name}).scalar_one()
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.commit()
            return bool(exists)
    finally:
        engine.dispose()
