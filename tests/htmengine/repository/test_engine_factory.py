"""htmengine.repository engine factory and DSNs, on the session's migrated database."""

from __future__ import annotations

import configparser

import sqlalchemy as sa

from htmengine import repository


def test_engine_factory_caches_per_dsn_and_reset(migrated_db: str) -> None:
    engine = repository.engineFactory()
    assert repository.engineFactory() is engine
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT DATABASE()").scalar_one() == migrated_db
    fresh = repository.engineFactory(reset=True)
    assert fresh is not engine
    assert repository.engineFactory() is fresh
    assert isinstance(fresh.pool, sa.pool.QueuePool)


def test_dsn_comes_from_the_repository_section(migrated_db: str) -> None:
    url = sa.make_url(repository.getDbDSN())
    assert (url.drivername, url.host, url.port, url.username, url.database) == (
        "mysql+pymysql", "127.0.0.1", 3306, "root", migrated_db)
    config = configparser.ConfigParser(interpolation=None)
    config.read_dict({"repository": {"db": "other_db", "host": "db.example", "port": "3307",
                                     "user": "htm", "passwd": "s3cr@t"}})
    url = sa.make_url(repository.getDbDSN(config))
    assert (url.host, url.port, url.database, url.password) == (
        "db.example", 3307, "other_db", "s3cr@t")
    assert sa.make_url(repository.getDSN(config)).database is None
    server = repository.getUnaffiliatedEngine()
    try:
        with server.connect() as conn:
            assert conn.exec_driver_sql("SELECT DATABASE()").scalar_one() is None
    finally:
        server.dispose()
