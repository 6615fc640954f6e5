"""Initial htmengine schema: metric, metric_data, instance_status_history, lock.

Equals the original engine's schema after its four migrations (DATETIME columns, no
TIMESTAMP defaults, `metric_data.multi_step_best_predictions`).

Revision ID: 001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Revision identifiers, used by Alembic. Do not change.
revision = "001"
down_revision = None
branch_labels = None
depends_on = None

_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def upgrade() -> None:
    """Create the four tables and the `metrics` operation-lock row."""
    op.create_table(
        "instance_status_history",
        sa.Column("server", mysql.VARCHAR(100), server_default="", nullable=False),
        sa.Column("timestamp", mysql.DATETIME(), nullable=False),
        sa.Column("status", mysql.VARCHAR(32), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("server", "timestamp"),
        **_TABLE_OPTIONS,
    )

    op.create_table(
        "lock",
        sa.Column("name", mysql.VARCHAR(40), nullable=False),
        sa.PrimaryKeyConstraint("name"),
        **_TABLE_OPTIONS,
    )
    op.execute("INSERT INTO `lock` (`name`) VALUES ('metrics')")

    op.create_table(
        "metric",
        sa.Column("uid", mysql.VARCHAR(40), nullable=False),
        sa.Column("datasource", mysql.VARCHAR(100), nullable=True),
        sa.Column("name", mysql.VARCHAR(255), nullable=True),
        sa.Column("description", mysql.VARCHAR(200), nullable=True),
        sa.Column("server", mysql.VARCHAR(100), nullable=True),
        sa.Column("location", mysql.VARCHAR(200), nullable=True),
        sa.Column("parameters", mysql.TEXT(), nullable=True),
        sa.Column("status", mysql.INTEGER(), server_default="0", autoincrement=False,
                  nullable=True),
        sa.Column("message", mysql.TEXT(), nullable=True),
        sa.Column("collector_error", mysql.TEXT(), nullable=True),
        sa.Column("last_timestamp", mysql.DATETIME(), nullable=True),
        sa.Column("poll_interval", mysql.INTEGER(), server_default="60", autoincrement=False,
                  nullable=True),
        sa.Column("tag_name", mysql.VARCHAR(200), nullable=True),
        sa.Column("model_params", mysql.TEXT(), nullable=True),
        sa.Column("last_rowid", mysql.INTEGER(), autoincrement=False, nullable=True),
        sa.PrimaryKeyConstraint("uid"),
        **_TABLE_OPTIONS,
    )
    op.create_index("datasource_idx", "metric", ["datasource"], unique=False)
    op.create_index("location_idx", "metric", ["location"], unique=False)
    op.create_index("server_idx", "metric", ["server"], unique=False)

    op.create_table(
        "metric_data",
        sa.Column("uid", mysql.VARCHAR(40), server_default="", nullable=False),
        sa.Column("rowid", mysql.INTEGER(), server_default="0", autoincrement=False,
                  nullable=False),
        sa.Column("timestamp", mysql.DATETIME(), nullable=False),
        sa.Column("metric_value", mysql.DOUBLE(asdecimal=False), nullable=False),
        sa.Column("raw_anomaly_score", mysql.DOUBLE(asdecimal=False), nullable=True),
        sa.Column("anomaly_score", mysql.DOUBLE(asdecimal=False), nullable=True),
        sa.Column("display_value", mysql.INTEGER(), autoincrement=False, nullable=True),
        sa.Column("multi_step_best_predictions", mysql.TEXT(), nullable=True),
        sa.ForeignKeyConstraint(["uid"], ["metric.uid"], name="metric_data_to_metric_fk",
                                onupdate="CASCADE", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("uid", "rowid"),
        **_TABLE_OPTIONS,
    )
    op.create_index("anomaly_score_idx", "metric_data", ["anomaly_score"], unique=False)
    op.create_index("timestamp_idx", "metric_data", ["timestamp"], unique=False)


def downgrade() -> None:
    """Rollback is not supported."""
    raise NotImplementedError("Rollback is not supported.")
