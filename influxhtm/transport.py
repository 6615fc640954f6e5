"""InfluxTransport: one InfluxDB 1.x database over HTTP (queries, writes, database admin).

Transport only: it knows nothing of sensors or models, which are built on it
(`influxhtm.client.InfluxHtmClient` adds the sensor gateway)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError, InfluxDBServerError

from influxhtm.errors import (
    InfluxConnectionError,
    InfluxHtmInputError,
    InfluxQueryError,
)
from influxhtm.influxql import checkName, quoteIdent

_log = logging.getLogger(__name__)

COMPONENT_TAG = "component"
MODEL_ID_TAG = "htm_model_id"
# On results of a sensor bound to a retention policy (an aggregated copy): that policy. The
# series index is shared by all policies, so this keeps results of a copy apart.
RETENTION_POLICY_TAG = "sensor_retention_policy"
RESULTS_SUFFIX = "_model"
# One point per HTM model (at time 0) holding its parameters as JSON.
MODEL_REGISTRY_MEASUREMENT = "htm_models"
# The field holding a sensor's values.
VALUE_FIELD = "value"

_FALSE_WORDS = {"", "0", "false", "no", "off"}


def _envBool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE_WORDS


def _envPort(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        raise InfluxHtmInputError(f"{name}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise InfluxHtmInputError(f"{name}={raw!r} is not a port number")
    return port


class InfluxTransport:
    """Connection to one InfluxDB 1.x database.

    Arguments left out come from INFLUX_DATABASE, INFLUX_HOST, INFLUX_PORT, INFLUX_USER,
    INFLUX_PASS and INFLUX_SSL, read here (not at import), with defaults localhost:8086, no
    credentials, no SSL. The constructor only pings the server, so that an unreachable server
    fails here with InfluxConnectionError; the database is created on the first write.
    """

    def __init__(self, database: str | None = None, host: str | None = None,
                 port: int | None = None, username: str | None = None,
                 password: str | None = None, ssl: bool | None = None, *,
                 timeout: float = 30.0, verbose: bool = False) -> None:
        if database is None:
            database = os.environ.get("INFLUX_DATABASE")
            if not database:
                raise InfluxHtmInputError("no database given: pass InfluxHtmClient(database) or "
                                       "set INFLUX_DATABASE")
        self._database = checkName("database", database)
        self._host = host if host is not None else os.environ.get("INFLUX_HOST") or "localhost"
        self._port = int(port) if port is not None else _envPort("INFLUX_PORT", 8086)
        self._username = (username if username is not None
                          else os.environ.get("INFLUX_USER") or "root")
        self._password = (password if password is not None
                          else os.environ.get("INFLUX_PASS") or "root")
        self._ssl = bool(ssl) if ssl is not None else _envBool("INFLUX_SSL")
        self._timeout = timeout
        self._verbose = verbose
        self._local = threading.local()
        self._databaseKnown = False
        try:
            self.getInfluxClient().ping()
        except requests.exceptions.RequestException as exc:
            raise InfluxConnectionError(
                f"cannot reach InfluxDB at {self.describe()}: {exc}") from exc

    # ----------------------------------------------------------------------- plumbing

    def describe(self) -> str:
        """`http(s)://user@host:port/database` for messages (never the password)."""
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://{self._username}@{self._host}:{self._port}/{self._database}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    @property
    def database(self) -> str:
        """Name of the database this client reads and writes."""
        return self._database

    def getInfluxClient(self) -> InfluxDBClient:
        """The underlying `influxdb.InfluxDBClient` of the calling thread."""
        influx = getattr(self._local, "influx", None)
        if influx is None:
            influx = InfluxDBClient(host=self._host, port=self._port, username=self._username,
                                    password=self._password, ssl=self._ssl,
                                    database=self._database, timeout=self._timeout)
            self._local.influx = influx
        return influx

    def _translate(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, requests.exceptions.RequestException):
            return InfluxConnectionError(f"{what}: InfluxDB at {self.describe()} "
                                         f"unreachable: {exc}")
        return InfluxQueryError(f"{what}: {exc}")

    def query(self, statement: str, *, write: bool = False,
              database: str | None = "") -> list[dict[str, Any]]:
        """Run one InfluxQL statement and return its series (`name`, `columns`, `values`,
        maybe `tags`), times as epoch microseconds. A read on a database that does not exist
        yet returns no series. `write=True` sends it with POST (CREATE, DROP, SELECT INTO)."""
        if self._verbose:
            _log.info("InfluxQL: %s", statement)
        target = self._database if database == "" else database
        try:
            result = self.getInfluxClient().query(
                statement, database=target, epoch="u", method="POST" if write else "GET")
        except InfluxDBClientError as exc:
            if not write and "database not found" in str(exc):
                return []
            raise self._translate(exc, f"query {statement!r} failed") from exc
        except (InfluxDBServerError, requests.exceptions.RequestException) as exc:
            raise self._translate(exc, f"query {statement!r} failed") from exc
        return list(result.raw.get("series", []))

    def createDatabase(self) -> None:
        """Create this client's database if it does not exist (idempotent)."""
        self.query(f"CREATE DATABASE {quoteIdent(self._database)}", write=True, database=None)
        self._databaseKnown = True

    def dropDatabase(self) -> None:
        """Drop this client's database and everything in it."""
        self.query(f"DROP DATABASE {quoteIdent(self._database)}", write=True, database=None)
        self._databaseKnown = False

    def writePoints(self, points: Sequence[Mapping[str, Any]],
                    retentionPolicy: str | None = None) -> None:
        """Write line-protocol points (`measurement`, `tags`, `fields`, `time` in epoch
        microseconds), creating the database first if it is missing."""
        if not points:
            return
        for attempt in (1, 2):
            try:
                self.getInfluxClient().write_points(
                    list(points), time_precision="u", retention_policy=retentionPolicy,
                    batch_size=5000)
                return
            except InfluxDBClientError as exc:
                if attempt == 1 and exc.code == 404 and "database not found" in str(exc):
                    self.createDatabase()
                    continue
                raise self._translate(exc, f"writing {len(points)} points failed") from exc
            except (InfluxDBServerError, requests.exceptions.RequestException) as exc:
                raise self._translate(exc, f"writing {len(points)} points failed") from exc

    def defaultRetentionPolicy(self) -> str:
        """Name of the database's default retention policy ("autogen" unless changed)."""
        for series in self.query(f"SHOW RETENTION POLICIES ON {quoteIdent(self._database)}"):
            nameAt = series["columns"].index("name")
            defaultAt = series["columns"].index("default")
            for row in series.get("values", []):
                if row[defaultAt]:
                    return str(row[nameAt])
        return "autogen"
