"""Alembic environment for the htmengine database.

The database URL is taken, in order, from `config.attributes["url"]` (set by
`repository/migrate.py`), the `sqlalchemy.url` option, or `htmengine.repository.getDbDSN()`
(application.conf `[repository]`). A connection passed in `config.attributes["connection"]`
is used as is.
"""

from __future__ import annotations

from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from htmengine.repository import getDbDSN, schema

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = schema.metadata


def _databaseUrl() -> str:
    return config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or getDbDSN()


def runMigrationsOffline() -> None:
    """Emit the migration SQL without connecting (`alembic upgrade head --sql`)."""
    context.configure(url=_databaseUrl(), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def runMigrationsOnline() -> None:
    """Run the migrations on a live connection."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_databaseUrl(), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            context.configure(connection=conn, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    runMigrationsOffline()
else:
    runMigrationsOnline()
