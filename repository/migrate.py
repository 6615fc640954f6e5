#!/usr/bin/env python
"""Create the htmengine database if it is missing and upgrade it to the latest migration.

Usage: `python repository/migrate.py` (connection settings from application.conf
`[repository]` of $APPLICATION_CONFIG_PATH, by default skeleton_app/conf, and its overrides). Running it again changes nothing.
Exit status 0 on success, 1 with a message on stderr on failure.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_DIR = Path(__file__).resolve().parent
REPO_ROOT = REPOSITORY_DIR.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config as AlembicConfig  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

from htmengine.repository import getDbDSN, getDbName, getDSN  # noqa: E402
from nta_utils.config import Config  # noqa: E402
from nta_utils.db import create_database_if_missing  # noqa: E402
from nta_utils.errors import NtaUtilsError  # noqa: E402

ALEMBIC_INI = REPOSITORY_DIR / "alembic.ini"
MIGRATIONS_DIR = REPOSITORY_DIR / "migrations"


@dataclass
class MigrationReport:
    """What one run did."""

    database: str
    created_database: bool
    revision_before: str | None
    revision_after: str | None

    def describe(self) -> str:
        """One line for the console."""
        created = "created" if self.created_database else "exists"
        if self.revision_before == self.revision_after:
            change = f"already at revision {self.revision_after} (nothing to do)"
        else:
            change = f"upgraded {self.revision_before or '<empty>'} -> {self.revision_after}"
        return f"Database {self.database!r} ({created}): {change}"


def alembicConfig(url: str) -> AlembicConfig:
    """Alembic configuration for this repository's migrations on database `url`."""
    cfg = AlembicConfig(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logging"] = False
    return cfg


def currentRevision(url: str) -> str | None:
    """The revision recorded in the database's alembic_version table, or None."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def headRevision() -> str | None:
    """The newest revision in repository/migrations/versions."""
    return ScriptDirectory.from_config(alembicConfig("mysql+pymysql://")).get_current_head()


def migrate(config: Config | None = None) -> MigrationReport:
    """Create the database if missing, then `alembic upgrade head` on it."""
    config = config if config is not None else Config("application.conf")
    dbName = getDbName(config)
    created = create_database_if_missing(getDSN(config), dbName)
    url = getDbDSN(config)
    before = currentRevision(url)
    if before != headRevision():
        command.upgrade(alembicConfig(url), "head")
    return MigrationReport(dbName, created, before, currentRevision(url))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Connection settings: application.conf [repository] in $APPLICATION_CONFIG_PATH "
               "(unset: the application `make run` runs, skeleton_app/conf).").parse_args(argv)
    try:
        report = migrate()
    except (NtaUtilsError, sa.exc.SQLAlchemyError, ValueError) as error:
        print(f"migrate.py: failed: {error}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0


if __name__ == "__main__":
    os.chdir(REPO_ROOT)
    sys.exit(main())
