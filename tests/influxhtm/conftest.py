"""Fixtures for influxhtm tests: a real InfluxDB 1.x (started by `make test` through
scripts/ensure-services.sh influxdb) and a fresh database per test, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import requests
from influxdb import InfluxDBClient

from influxhtm import InfluxHtmClient

INFLUX_HOST = os.environ.get("INFLUX_HOST") or "127.0.0.1"
INFLUX_PORT = int(os.environ.get("INFLUX_PORT") or 8086)


@pytest.fixture(scope="session")
def influx_address() -> tuple[str, int]:
    """(host, port) of the test server: INFLUX_HOST/INFLUX_PORT or 127.0.0.1:8086."""
    return INFLUX_HOST, INFLUX_PORT


@pytest.fixture(scope="session")
def influx_server() -> InfluxDBClient:
    """A raw client on the test server; fails clearly when InfluxDB is not running."""
    raw = InfluxDBClient(INFLUX_HOST, INFLUX_PORT, timeout=10)
    try:
        raw.ping()
    except requests.exceptions.RequestException as exc:
        pytest.fail(f"InfluxDB is not reachable at {INFLUX_HOST}:{INFLUX_PORT} ({exc}); "
                    f"start it with scripts/ensure-services.sh influxdb")
    return raw


@pytest.fixture
def influx_database(influx_server: InfluxDBClient) -> Iterator[str]:
    """A unique database name for one test (not created); dropped after the test."""
    name = f"influxhtm_test_{uuid.uuid4().hex[:12]}"
    yield name
    influx_server.drop_database(name)


@pytest.fixture
def influx_client(influx_database: str) -> InfluxHtmClient:
    """An InfluxHtmClient on this test's database."""
    return InfluxHtmClient(influx_database, host=INFLUX_HOST, port=INFLUX_PORT)

