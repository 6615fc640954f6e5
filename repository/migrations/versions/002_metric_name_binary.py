"""metric.name compares byte for byte (utf8mb4_bin) instead of case- and accent-insensitively.

Before: ``x.Case``, ``x.case`` and ``x.CASE`` were one metric and ``x.café`` was ``x.cafe``.
Rows whose names collide under the old collation are reported (on stdout and in the log), never
merged or renamed: after the upgrade each exact name is its own metric, and samples sent under
any spelling of a collided name before the upgrade stay with the metric that received them.

Revision ID: 002
Revises: 001
Create Date: 2026-11-27
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

# Revision identifiers, used by Alembic. Do not change.
revision = "002"
down_revision = "001"
branch_labels = None
depends_on = None

_log = logging.getLogger("alembic.runtime.migration")
BINARY_COLLATION = "utf8mb4_bin"


def collidingNames(conn: sa.Connection) -> list[list[tuple[str, str]]]:
    """Groups of (uid, name) of metrics whose names compare equal under the column's current
    collation (more than one row per group)."""
    groups = []
    keys = conn.exec_driver_sql(
        "SELECT MIN(name) FROM metric WHERE name IS NOT NULL GROUP BY name "
        "HAVING COUNT(*) > 1").scalars().all()
    for key in keys:
        rows = conn.execute(sa.text("SELECT uid, name FROM metric WHERE name = :n ORDER BY uid"),
                            {"n": key}).all()
        groups.append([(row.uid, row.name) for row in rows])
    return groups


def upgrade() -> None:
    """Report names that collide today, then make metric.name binary."""
    conn = op.get_bind()
    for group in collidingNames(conn):
        described = ", ".join(f"{name!r} (uid {uid})" for uid, name in group)
        message = (f"WARNING: metric names that were one name before this migration (not "
                   f"merged; each exact name is its own metric from now on): {described}")
        print(message)
        _log.warning(message)
    op.execute(f"ALTER TABLE metric MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 "
               f"COLLATE {BINARY_COLLATION} NULL")


def downgrade() -> None:
    """Back to the table's default (case-insensitive) collation."""
    op.execute("ALTER TABLE metric MODIFY name VARCHAR(255) CHARACTER SET utf8mb4 NULL")
