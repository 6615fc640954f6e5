"""InfluxHtmClient against the real InfluxDB: settings from the environment read when the
client is made, a clear error for an unreachable server, the database created on first write."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from influxhtm import InfluxConnectionError, InfluxHtmClient, InfluxHtmInputError, InfluxQueryError

pytestmark = pytest.mark.influx


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_in_the_constructor_naming_host_and_port():
    port = _closed_port()
    with pytest.raises(InfluxConnectionError, match=f"127.0.0.1:{port}"):
        InfluxHtmClient("anything", host="127.0.0.1", port=port)


def test_environment_is_read_when_the_client_is_made(monkeypatch, influx_database,
                                                     influx_address):
    host, port_ok = influx_address
    port = _closed_port()
    monkeypatch.setenv("INFLUX_HOST", "127.0.0.1")
    monkeypatch.setenv("INFLUX_PORT", str(port))
    monkeypatch.setenv("INFLUX_USER", "alice")
    monkeypatch.setenv("INFLUX_PASS", "secret")
    monkeypatch.setenv("INFLUX_SSL", "0")
    with pytest.raises(InfluxConnectionError, match=f"http://alice@127.0.0.1:{port}/") as info:
        InfluxHtmClient(influx_database)
    assert "secret" not in str(info.value)
    monkeypatch.setenv("INFLUX_SSL", "true")
    with pytest.raises(InfluxConnectionError, match="https://"):
        InfluxHtmClient(influx_database)
    # Changed environment, same process: the next client picks it up.
    monkeypatch.setenv("INFLUX_HOST", host)
    monkeypatch.setenv("INFLUX_PORT", str(port_ok))
    monkeypatch.setenv("INFLUX_SSL", "")
    monkeypatch.setenv("INFLUX_DATABASE", influx_database)
    client = InfluxHtmClient()
    assert client.database == influx_database
    assert client.describe() == f"http://alice@{host}:{port_ok}/{influx_database}"


def test_bad_port_and_missing_database_are_named(monkeypatch):
    monkeypatch.setenv("INFLUX_PORT", "eighty")
    with pytest.raises(InfluxHtmInputError, match="INFLUX_PORT"):
        InfluxHtmClient("db")
    monkeypatch.delenv("INFLUX_PORT")
    monkeypatch.delenv("INFLUX_DATABASE", raising=False)
    with pytest.raises(InfluxHtmInputError, match="INFLUX_DATABASE"):
        InfluxHtmClient()


def test_database_is_created_on_first_write_not_before(influx_client, influx_server,
                                                       influx_database):
    names = lambda: {entry["name"] for entry in influx_server.get_list_database()}  # noqa: E731
    sensor = influx_client.createSensor("power", "coffee-machine")
    assert influx_database not in names()
    # Reading a database that does not exist yet is simply empty.
    assert sensor.getData() == []
    assert influx_client.listSensors() == []
    sensor.write({"time": 1_700_000_000, "value": 23.33})
    assert influx_database in names()
    assert [p["value"] for p in sensor.getData()] == [23.33]


class _PingOnlyHandler(http.server.BaseHTTPRequestHandler):
    """Answers InfluxDB's /ping like a server, so a client can be made, and nothing else."""

    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(204 if self.path.startswith("/ping") else 500)
        self.send_header("X-Influxdb-Version", "1.6-fake")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_server_lost_after_the_constructor_is_a_connection_error():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PingOnlyHandler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = InfluxHtmClient("gone", host="127.0.0.1", port=port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    with pytest.raises(InfluxConnectionError, match=f"127.0.0.1:{port}"):
        client.createSensor("power", "a").getData()
    with pytest.raises(InfluxConnectionError, match="writing 1 points"):
        client.createSensor("power", "a").write({"time": 1, "value": 1.0})


def test_rejected_writes_are_query_errors(influx_client, influx_server, influx_database):
    influx_server.create_database(influx_database)
    influx_server.write_points([{"measurement": "power", "tags": {"component": "a"},
                                 "fields": {"value": "a string"}, "time": 1}],
                               database=influx_database, time_precision="s")
    with pytest.raises(InfluxQueryError, match="field type conflict"):
        influx_client.createSensor("power", "a").write({"time": 2, "value": 1.0})
