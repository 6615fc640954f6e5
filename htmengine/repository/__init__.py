"""htmengine's MySQL repository: engine factory and connection settings.

Connection settings come from section `[repository]` of `application.conf` (options db, host,
user, passwd, port), with the usual override layers of `nta_utils.config.Config`. Tables are in
`htmengine.repository.schema`, query functions in `htmengine.repository.queries`; as in the
original engine, the package also exports every query function, `MetricStatus` and
`OperationLock`, so ``repository.getMetric(conn, uid)`` works.
"""

from __future__ import annotations

import logging
import os
import threading
from configparser import ConfigParser

import sqlalchemy as sa

from htmengine.repository import queries as _queries
from htmengine.repository.queries import *  # noqa: F403 - the original's package-level API
from htmengine.repository.transactions import runInTransaction
from nta_utils.config import Config
from nta_utils.db import create_mysql_engine, make_mysql_url, retry_on_transient_error

__all__ = [
    *_queries.__all__,
    "engineFactory",
    "getBaseConnectionArgsDict",
    "getDSN",
    "getDbDSN",
    "getUnaffiliatedEngine",
    "retryOnTransientErrors",
    "runInTransaction",
]

_log = logging.getLogger(__name__)

APPLICATION_CONFIG_NAME = "application.conf"
REPOSITORY_SECTION = "repository"

# Original name of the retry decorator.
retryOnTransientErrors = retry_on_transient_error


def _repositoryConfig(config: ConfigParser | None) -> ConfigParser:
    return Config(APPLICATION_CONFIG_NAME) if config is None else config


def getBaseConnectionArgsDict(config: ConfigParser | None = None) -> dict[str, object]:
    """Connection parameters (host, port, user, passwd) from `[repository]`, without db."""
    config = _repositoryConfig(config)
    return {
        "host": config.get(REPOSITORY_SECTION, "host"),
        "port": config.getint(REPOSITORY_SECTION, "port"),
        "user": config.get(REPOSITORY_SECTION, "user"),
        "passwd": config.get(REPOSITORY_SECTION, "passwd"),
    }


def getDbName(config: ConfigParser | None = None) -> str:
    """Name of the htmengine database (`[repository] db`)."""
    return _repositoryConfig(config).get(REPOSITORY_SECTION, "db")


def getDSN(config: ConfigParser | None = None) -> str:
    """URL of the MySQL server, without a database."""
    url = make_mysql_url(getBaseConnectionArgsDict(config))
    return url.render_as_string(hide_password=False)


def getDbDSN(config: ConfigParser | None = None) -> str:
    """URL of the htmengine database (`mysql+pymysql://user:passwd@host:port/db?...`)."""
    config = _repositoryConfig(config)
    params = {**getBaseConnectionArgsDict(config), "db": getDbName(config)}
    return make_mysql_url(params).render_as_string(hide_password=False)


def getUnaffiliatedEngine(config: ConfigParser | None = None) -> sa.Engine:
    """A new engine on the MySQL server not bound to any database (e.g. to create it).
    The caller disposes of it."""
    return create_mysql_engine(getDSN(config), pool_size=1, max_overflow=2)


class _EngineCache:
    """The per-process engine, re-created when the DSN changes or after a fork."""

    lock = threading.Lock()
    engine: sa.Engine | None = None
    dsn: str | None = None
    pid: int | None = None

    @classmethod
    def get(cls, dsn: str) -> sa.Engine:
        with cls.lock:
            pid = os.getpid()
            if cls.engine is not None and cls.pid != pid:
                # Forked child: drop the inherited pool without closing the parent's sockets.
                _log.info("Engine inherited from pid %s in pid %s; creating a new one",
                          cls.pid, pid)
                cls.engine.dispose(close=False)
                cls.engine = None
            if cls.engine is not None and cls.dsn != dsn:
                cls.engine.dispose()
                cls.engine = None
            if cls.engine is None:
                cls.engine = create_mysql_engine(dsn)
                cls.dsn = dsn
                cls.pid = pid
            return cls.engine

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            if cls.engine is not None:
                cls.engine.dispose(close=cls.pid == os.getpid())
            cls.engine = None
            cls.dsn = None
            cls.pid = None


def engineFactory(config: ConfigParser | None = None, reset: bool = False) -> sa.Engine:
    """The process-wide SQLAlchemy engine on the htmengine database (QueuePool with
    pre-ping and recycling). The same engine is returned while the DSN and the process stay
    the same; `reset=True` disposes of it and makes a new one.

    Usage::

        engine = repository.engineFactory()
        with engine.connect() as conn:
            metric = queries.getMetric(conn, metricId)
    """
    if reset:
        _EngineCache.reset()
    return _EngineCache.get(getDbDSN(config))
