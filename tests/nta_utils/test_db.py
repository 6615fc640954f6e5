"""nta_utils.db against the real MariaDB: retry on real lock wait timeouts, deadlocks and
killed connections; no retry on other errors; engine pool behaviour; database create/drop."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from nta_utils import db
from nta_utils.errors import DatabaseError

SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306/"


@pytest.fixture()
def db_url(migrated_db: str) -> str:
    return f"mysql+pymysql://root@127.0.0.1:3306/{migrated_db}"


@pytest.fixture()
def probe_table(db_url: str) -> Iterator[str]:
    """A scratch InnoDB table with rows id 1 and 2 (v = 0), dropped afterwards."""
    name = f"retry_probe_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE `{name}` (id INT PRIMARY KEY, v INT NOT NULL) "
                             f"ENGINE=InnoDB")
        conn.exec_driver_sql(f"INSERT INTO `{name}` VALUES (1, 0), (2, 0)")
    yield name
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{name}`")
    engine.dispose()


@pytest.fixture()
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = db.create_mysql_engine(db_url)
    yield eng
    eng.dispose()


def _values(engine: sa.Engine, table: str) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.exec_driver_sql(f"SELECT id, v FROM `{table}`").all())


def test_lock_wait_timeout_is_retried_until_the_lock_is_released(
        engine: sa.Engine, probe_table: str, caplog: pytest.LogCaptureFixture) -> None:
    holder = engine.connect()
    holder.begin()
    holder.exec_driver_sql(f"SELECT v FROM `{probe_table}` WHERE id = 1 FOR UPDATE").all()
    release = threading.Timer(1.6, holder.commit)
    attempts: list[float] = []

    @db.retry_on_transient_error(initial_delay=0.05)
    def increment() -> None:
        attempts.append(time.monotonic())
        with engine.begin() as conn:
            conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
            conn.exec_driver_sql(f"UPDATE `{probe_table}` SET v = v + 1 WHERE id = 1")

    caplog.set_level(logging.WARNING, logger="nta_utils.db")
    release.start()
    try:
        increment()
    finally:
        release.join()
        holder.close()
    assert len(attempts) >= 2
    assert _values(engine, probe_table)[1] == 1
    assert any("1205" in record.getMessage() for record in caplog.records)


def test_deadlock_victim_is_retried_and_both_transactions_commit(
        engine: sa.Engine, probe_table: str, caplog: pytest.LogCaptureFixture) -> None:
    barrier = threading.Barrier(2, timeout=10)
    attempts = {"forward": 0, "backward": 0}
    errors: list[BaseException] = []

    def make_worker(label: str, first: int, second: int):
        @db.retry_on_transient_error(initial_delay=0.05)
        def transfer() -> None:
            attempts[label] += 1
            with engine.begin() as conn:
                conn.exec_driver_sql(f"UPDATE `{probe_table}` SET v = v + 1 WHERE id = {first}")
                if attempts[label] == 1:
                    barrier.wait()  # both hold their first row lock now
                conn.exec_driver_sql(
                    f"UPDATE `{probe_table}` SET v = v + 10 WHERE id = {second}")

        def run() -> None:
            try:
                transfer()
            except BaseException as error:  # reported by the main thread
                errors.append(error)
        return run

    caplog.set_level(logging.WARNING, logger="nta_utils.db")
    threads = [threading.Thread(target=make_worker("forward", 1, 2)),
               threading.Thread(target=make_worker("backward", 2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(attempts.values()) == [1, 2]  # exactly one deadlock victim, retried once
    assert _values(engine, probe_table) == {1: 11, 2: 11}
    assert any("1213" in record.getMessage() for record in caplog.records)


def test_killed_connection_is_retried_on_a_new_connection(
        engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    connection_ids: list[int] = []

    @db.retry_on_transient_error(initial_delay=0.05)
    def slow_query() -> int:
        with engine.connect() as conn:
            connection_ids.append(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())
            if len(connection_ids) == 1:
                killer = threading.Timer(0.3, _kill, args=(connection_ids[0],))
                killer.start()
            pause = 5 if len(connection_ids) == 1 else 0
            return conn.exec_driver_sql(f"SELECT SLEEP({pause}) + 7").scalar_one()

    caplog.set_level(logging.WARNING, logger="nta_utils.db")
    started = time.monotonic()
    assert slow_query() == 7
    assert len(connection_ids) == 2 and connection_ids[0] != connection_ids[1]
    assert time.monotonic() - started < 4.0  # the first query was cut short, not waited out
    assert any("2013" in record.getMessage() for record in caplog.records)


def _kill(connection_id: int) -> None:
    killer = sa.create_engine(SERVER_URL, poolclass=sa.pool.NullPool)
    with killer.connect() as conn:
        conn.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
    killer.dispose()


def test_pool_pre_ping_replaces_a_killed_idle_connection(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        first_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
    _kill(first_id)  # the pooled, idle connection is now dead
    with engine.connect() as conn:
        second_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
    assert second_id != first_id


def test_non_transient_error_is_not_retried(engine: sa.Engine) -> None:
    calls = 0

    @db.retry_on_transient_error(initial_delay=0.01)
    def bad_query() -> None:
        nonlocal calls
        calls += 1
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT * FROM table_that_does_not_exist")

    with pytest.raises(sa.exc.ProgrammingError) as info:
        bad_query()
    assert calls == 1
    assert db.mysql_error_code(info.value) == 1146


def test_exhausted_retries_raise_database_error_chained_to_the_cause(
        caplog: pytest.LogCaptureFixture) -> None:
    unreachable = db.create_mysql_engine(
        {"host": "127.0.0.1", "port": _closed_port(), "user": "root", "passwd": ""})
    calls = 0

    @db.retry_on_transient_error(max_attempts=3, initial_delay=0.01)
    def connect() -> None:
        nonlocal calls
        calls += 1
        with unreachable.connect():
            pass

    caplog.set_level(logging.DEBUG, logger="nta_utils.db")
    caplog.set_level(logging.DEBUG, logger="nta_utils.outage")
    db.database_outage().restored()
    with pytest.raises(DatabaseError) as info:
        connect()
    unreachable.dispose()
    assert calls == 3
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)
    assert db.mysql_error_code(info.value.__cause__) == db.CR_CONN_HOST_ERROR
    # a lost database is one WARNING for the outage; the retries are DEBUG lines
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and all(r.levelno == logging.DEBUG for r in retries)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].getMessage().startswith("Lost the database")
    db.database_outage().restored()


def _closed_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_retry_options_are_validated() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        db.retry_on_transient_error(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_factor"):
        db.retry_on_transient_error(backoff_factor=0.5)


def test_engine_uses_a_pinging_queue_pool(engine: sa.Engine) -> None:
    assert isinstance(engine.pool, sa.pool.QueuePool)
    assert engine.pool._pre_ping is True
    assert engine.pool._recycle == 179
    assert engine.url.drivername == "mysql+pymysql"


def test_make_mysql_url_escapes_the_password_and_checks_the_port() -> None:
    url = db.make_mysql_url({"host": "db.example", "port": "3307", "user": "htm",
                             "passwd": "p@ss:w/rd", "db": "htmengine"})
    assert url.password == "p@ss:w/rd"
    assert sa.make_url(url.render_as_string(hide_password=False)).password == "p@ss:w/rd"
    assert (url.host, url.port, url.database) == ("db.example", 3307, "htmengine")
    with pytest.raises(ValueError, match="port"):
        db.make_mysql_url({"host": "h", "user": "u", "port": "abc"})
    with pytest.raises(ValueError, match="host"):
        db.make_mysql_url({"user": "u"})


def test_create_and_drop_database(engine_env: object) -> None:
    name = f"nta_db_test_{uuid.uuid4().hex[:8]}"
    try:
        assert db.create_database_if_missing(SERVER_URL, name) is True
        assert db.create_database_if_missing(SERVER_URL, name) is False
        server = sa.create_engine(SERVER_URL, poolclass=sa.pool.NullPool)
        with server.connect() as conn:
            charset = conn.execute(
                sa.text("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME = :n"), {"n": name}).scalar_one()
        server.dispose()
        assert charset == "utf8mb4"
    finally:
        assert db.drop_database(SERVER_URL, name) is True
    assert db.drop_database(SERVER_URL, name) is False
    with pytest.raises(ValueError, match="Database name"):
        db.create_database_if_missing(SERVER_URL, "bad`name")
