"""SQLAlchemy Core tables of the htmengine database (MySQL/MariaDB types as in the original
engine's final schema): `metric`, `metric_data`, `instance_status_history` and `lock`.

The migrations in `repository/migrations/versions/` create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, MetaData, Table
from sqlalchemy.dialects.mysql import DATETIME, DOUBLE, INTEGER, TEXT, VARCHAR

metadata = MetaData()

# Server status history (kept for compatibility with the original schema).
instance_status_history = Table(
    "instance_status_history",
    metadata,
    Column("server", VARCHAR(100), primary_key=True, nullable=False, server_default=""),
    Column("timestamp", DATETIME(), primary_key=True, nullable=False),
    Column("status", VARCHAR(32), nullable=False, server_default=""),
)

# One row per metric (and its model). `last_rowid` is the highest `metric_data.rowid`
# allocated for the metric; it is only advanced under `SELECT ... FOR UPDATE` of this row.
metric = Table(
    "metric",
    metadata,
    Column("uid", VARCHAR(40), primary_key=True, nullable=False),
    Column("datasource", VARCHAR(100)),
    # exact names: binary collation (migration 002)
    Column("name", VARCHAR(255, collation="utf8mb4_bin")),
    Column("description", VARCHAR(200)),
    Column("server", VARCHAR(100)),
    Column("location", VARCHAR(200)),
    Column("parameters", TEXT()),
    Column("status", INTEGER(), autoincrement=False, server_default="0"),
    Column("message", TEXT()),
    Column("collector_error", TEXT()),
    Column("last_timestamp", DATETIME()),
    Column("poll_interval", INTEGER(), autoincrement=False, server_default="60"),
    Column("tag_name", VARCHAR(200)),
    Column("model_params", TEXT()),
    Column("last_rowid", INTEGER(), autoincrement=False),
)

Index("datasource_idx", metric.c.datasource)
Index("location_idx", metric.c.location)
Index("server_idx", metric.c.server)

# Samples and model results; (uid, rowid) with rowids contiguous from 1 per metric.
metric_data = Table(
    "metric_data",
    metadata,
    Column("uid", VARCHAR(40),
           ForeignKey(metric.c.uid, name="metric_data_to_metric_fk",
                      onupdate="CASCADE", ondelete="CASCADE"),
           primary_key=True, nullable=False, server_default=""),
    Column("rowid", INTEGER(), primary_key=True, autoincrement=False, nullable=False,
           server_default="0"),
    Column("timestamp", DATETIME(), nullable=False),
    Column("metric_value", DOUBLE(asdecimal=False), nullable=False),
    Column("raw_anomaly_score", DOUBLE(asdecimal=False)),
    Column("anomaly_score", DOUBLE(asdecimal=False)),
    Column("display_value", INTEGER(), autoincrement=False),
    Column("multi_step_best_predictions", TEXT()),
)

Index("timestamp_idx", metric_data.c.timestamp)
Index("anomaly_score_idx", metric_data.c.anomaly_score)

# Named operation locks (rows locked with SELECT ... FOR UPDATE); the migration inserts
# the row "metrics".
lock = Table(
    "lock",
    metadata,
    Column("name", VARCHAR(40), primary_key=True, nullable=False),
)
