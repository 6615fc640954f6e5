"""`python repository/migrate.py` on a fresh, separately named database: it creates the
database and the final schema; a second run changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from htmengine.repository import schema
from nta_utils.db import drop_database

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATE = REPO_ROOT / "repository" / "migrate.py"
SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306/"
DB_OVERRIDE = "_NTA_UTILS_CONFIG__APPLICATION__REPOSITORY__DB"

# (column, COLUMN_TYPE, nullable, default) as MariaDB reports them; int(11) normalised to int.
EXPECTED_COLUMNS = {
    "metric": [
        ("uid", "varchar(40)", "NO", None),
        ("datasource", "varchar(100)", "YES", "NULL"),
        ("name", "varchar(255)", "YES", "NULL"),
        ("description", "varchar(200)", "YES", "NULL"),
        ("server", "varchar(100)", "YES", "NULL"),
        ("location", "varchar(200)", "YES", "NULL"),
        ("parameters", "text", "YES", "NULL"),
        ("status", "int", "YES", "0"),
        ("message", "text", "YES", "NULL"),
        ("collector_error", "text", "YES", "NULL"),
        ("last_timestamp", "datetime", "YES", "NULL"),
        ("poll_interval", "int", "YES", "60"),
        ("tag_name", "varchar(200)", "YES", "NULL"),
        ("model_params", "text", "YES", "NULL"),
        ("last_rowid", "int", "YES", "NULL"),
    ],
    "metric_data": [
        ("uid", "varchar(40)", "NO", "''"),
        ("rowid", "int", "NO", "0"),
        ("timestamp", "datetime", "NO", None),
        ("metric_value", "double", "NO", None),
        ("raw_anomaly_score", "double", "YES", "NULL"),
        ("anomaly_score", "double", "YES", "NULL"),
        ("display_value", "int", "YES", "NULL"),
        ("multi_step_best_predictions", "text", "YES", "NULL"),
    ],
    "instance_status_history": [
        ("server", "varchar(100)", "NO", "''"),
        ("timestamp", "datetime", "NO", None),
        ("status", "varchar(32)", "NO", "''"),
    ],
    "lock": [("name", "varchar(40)", "NO", None)],
}
EXPECTED_PRIMARY_KEYS = {
    "metric": ["uid"], "metric_data": ["uid", "rowid"],
    "instance_status_history": ["server", "timestamp"], "lock": ["name"],
}
EXPECTED_INDEXES = {
    "metric": {"datasource_idx": ["datasource"], "location_idx": ["location"],
               "server_idx": ["server"]},
    "metric_data": {"timestamp_idx": ["timestamp"], "anomaly_score_idx": ["anomaly_score"]},
    "instance_status_history": {},
    "lock": {},
}


@pytest.fixture()
def fresh_db(engine_env: object) -> Iterator[tuple[str, dict[str, str]]]:
    """Name of a database that does not exist yet, and the environment pointing at it."""
    name = f"htm_migrate_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, DB_OVERRIDE: name}
    yield name, env
    drop_database(SERVER_URL, name)


def _run_migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(MIGRATE)], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def _columns(conn: sa.Connection, db: str, table: str) -> list[tuple]:
    rows = conn.execute(sa.text(
        "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :db AND TABLE_NAME = :t "
        "ORDER BY ORDINAL_POSITION"), {"db": db, "t": table}).all()
    return [(name, ctype.replace("int(11)", "int"), nullable, default)
            for name, ctype, nullable, default in rows]


def _snapshot(db: str) -> dict[str, object]:
    """Everything a migration could change: table DDL, alembic_version and lock rows."""
    engine = sa.create_engine(f"{SERVER_URL}{db}", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        tables = sorted(sa.inspect(conn).get_table_names())
        ddl = {t: conn.exec_driver_sql(f"SHOW CREATE TABLE `{t}`").one()[1] for t in tables}
        versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        locks = conn.exec_driver_sql("SELECT name FROM `lock`").all()
    engine.dispose()
    return {"ddl": ddl, "versions": versions, "locks": locks}


def test_fresh_migration_creates_the_final_schema(fresh_db: tuple[str, dict]) -> None:
    name, env = fresh_db
    result = _run_migrate(env)
    assert result.returncode == 0, result.stderr
    assert f"'{name}' (created)" in result.stdout
    assert "upgraded <empty> -> 002" in result.stdout

    engine = sa.create_engine(f"{SERVER_URL}{name}", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert set(inspector.get_table_names()) == {*EXPECTED_COLUMNS, "alembic_version"}
            for table, columns in EXPECTED_COLUMNS.items():
                assert _columns(conn, name, table) == columns, table
                assert (inspector.get_pk_constraint(table)["constrained_columns"]
                        == EXPECTED_PRIMARY_KEYS[table])
                indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes(table)
                           if ix["name"] != "PRIMARY"}
                assert indexes == EXPECTED_INDEXES[table], table
                assert inspector.get_table_options(table)["mysql_engine"] == "InnoDB"
            fks = inspector.get_foreign_keys("metric_data")
            assert len(fks) == 1
            assert fks[0]["name"] == "metric_data_to_metric_fk"
            assert (fks[0]["constrained_columns"], fks[0]["referred_table"],
                    fks[0]["referred_columns"]) == (["uid"], "metric", ["uid"])
            assert fks[0]["options"] == {"ondelete": "CASCADE", "onupdate": "CASCADE"}
            assert inspector.get_foreign_keys("metric") == []
            assert conn.exec_driver_sql("SELECT name FROM `lock`").all() == [("metrics",)]
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").all() == [
                ("002",)]
            # schema.py describes exactly what the migration made (types, columns, indexes).
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, schema.metadata) == []
    finally:
        engine.dispose()


def test_second_run_changes_nothing(fresh_db: tuple[str, dict]) -> None:
    name, env = fresh_db
    first = _run_migrate(env)
    assert first.returncode == 0, first.stderr
    before = _snapshot(name)
    second = _run_migrate(env)
    assert second.returncode == 0, second.stderr
    assert f"'{name}' (exists): already at revision 002 (nothing to do)" in second.stdout
    assert _snapshot(name) == before


def test_migration_onto_existing_empty_database(fresh_db: tuple[str, dict]) -> None:
    name, env = fresh_db
    server = sa.create_engine(SERVER_URL, poolclass=sa.pool.NullPool)
    with server.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    server.dispose()
    result = _run_migrate(env)
    assert result.returncode == 0, result.stderr
    assert f"'{name}' (exists): upgraded <empty> -> 002" in result.stdout
    assert _snapshot(name)["versions"] == [("002",)]


def test_unset_configuration_uses_the_skeleton_app_conf_and_says_so(
        fresh_db: tuple[str, dict]) -> None:
    name, env = fresh_db
    env = {k: v for k, v in env.items() if k != "APPLICATION_CONFIG_PATH"}
    result = _run_migrate(env)
    assert result.returncode == 0, result.stderr
    assert "APPLICATION_CONFIG_PATH is not set: using skeleton_app/conf" in result.stderr
    assert f"'{name}' (created)" in result.stdout


def test_missing_configuration_fails_with_a_clear_message(tmp_path: Path) -> None:
    env = {**os.environ, "APPLICATION_CONFIG_PATH": str(tmp_path / "nowhere")}
    result = _run_migrate(env)
    assert result.returncode == 1
    assert str(tmp_path / "nowhere") in result.stderr


def test_names_become_exact_and_collisions_are_reported_not_merged(
        fresh_db: tuple[str, dict]) -> None:
    name, env = fresh_db
    upgrade_to_001 = (
        "import sys; sys.path.insert(0, 'repository'); import migrate; "
        "from alembic import command; from nta_utils.db import create_database_if_missing; "
        "from htmengine.repository import getDbDSN, getDSN, getDbName; "
        "from nta_utils.config import Config; c = Config('application.conf'); "
        "create_database_if_missing(getDSN(c), getDbName(c)); "
        "command.upgrade(migrate.alembicConfig(getDbDSN(c)), '001')")
    subprocess.run([sys.executable, "-c", upgrade_to_001], env=env, cwd=REPO_ROOT, check=True,
                   timeout=120)
    engine = sa.create_engine(f"{SERVER_URL}{name}?charset=utf8mb4", poolclass=sa.pool.NullPool)
    names = {"u1": "x.Case", "u2": "x.case", "u3": "x.café", "u4": "x.cafe", "u5": "y.only"}
    try:
        with engine.begin() as conn:
            for uid, metric in names.items():
                conn.execute(sa.text("INSERT INTO metric (uid, name) VALUES (:u, :n)"),
                             {"u": uid, "n": metric})
            # before: the collation makes different names one
            assert conn.execute(sa.text("SELECT COUNT(*) FROM metric WHERE name = 'x.CASE'")
                                ).scalar() == 2
        result = _run_migrate(env)
        assert result.returncode == 0, result.stderr
        assert "upgraded 001 -> 002" in result.stdout
        reports = [line for line in result.stdout.splitlines() if "were one name" in line]
        assert len(reports) == 2
        assert any("'x.Case' (uid u1)" in r and "'x.case' (uid u2)" in r for r in reports)
        assert any("'x.café' (uid u3)" in r and "'x.cafe' (uid u4)" in r for r in reports)
        with engine.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT uid, name FROM metric")).all())
            assert rows == names   # nothing merged or renamed
            for metric in ("x.Case", "x.case", "x.café", "x.cafe"):
                assert conn.execute(sa.text("SELECT name FROM metric WHERE name = :n"),
                                    {"n": metric}).scalars().all() == [metric]
            assert conn.execute(sa.text("SELECT COUNT(*) FROM metric WHERE name = 'x.CASE'")
                                ).scalar() == 0
    finally:
        engine.dispose()
