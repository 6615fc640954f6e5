"""``htmengine clean`` (``make clean``): remove one application's resources — its database, its
RabbitMQ queues and exchange, its model checkpoints — and nothing else. The services must be
stopped first (``make clean`` stops them)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import sqlalchemy as sa

from htmengine.config import app_config, checkpoint_root, swapper_config
from htmengine.repository import getDbDSN, getDbName, getDSN, queries, schema
from nta_utils.db import drop_database
from nta_utils.dead_letter import dead_letter_queue_name
from nta_utils.message_bus import MessageBus

# Queues the tutorial's tools bind to the results exchange: consume_realtime_results.py's
# default, and the influxhtm bridge's (<exchange>.influxhtm, influxhtm.bridge.QUEUE_SUFFIX).
TUTORIAL_QUEUES = ("skeleton_results",)
BRIDGE_QUEUE_SUFFIX = ".influxhtm"


@dataclass
class CleanReport:
    """What was removed."""

    database: str | None = None
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)
    checkpoints: str | None = None

    def lines(self) -> list[str]:
        """One line per kind of resource."""
        return [
            f"database: {'dropped ' + self.database if self.database else 'none'}",
            f"queues: deleted {len(self.queues)}" + (f" ({', '.join(self.queues)})"
                                                     if self.queues else ""),
            f"exchanges: deleted {', '.join(self.exchanges) or 'none'} (if it existed)",
            f"checkpoints: {'removed ' + self.checkpoints if self.checkpoints else 'none'}",
        ]


def _metric_ids(engine_url: str) -> list[str]:
    engine = sa.create_engine(engine_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [row.uid for row in queries.getAllMetrics(conn, fields=[schema.metric.c.uid])]
    except sa.exc.SQLAlchemyError:
        return []  # no database (already cleaned) or no schema: no model queues to name
    finally:
        engine.dispose()


def clean_application() -> CleanReport:
    """Drop the configured database, delete the configured queues (model input queues of every
    metric and of every checkpointed model included) and the results exchange, and remove the
    checkpoint root."""
    app, swapper = app_config(), swapper_config()
    report = CleanReport()
    db_name = getDbName(app)
    root = checkpoint_root()
    model_ids = set(_metric_ids(getDbDSN(app)))
    if root.is_dir():
        model_ids.update(p.name for p in root.iterdir() if p.is_dir())
    exchange = app.get("metric_streamer", "results_exchange_name")
    prefix = swapper.get("interface_bus", "model_input_queue_prefix")
    consumed = [app.get("metric_listener", "queue_name"),
                swapper.get("interface_bus", "results_queue"),
                swapper.get("interface_bus", "scheduler_notification_queue")]
    queues = [*consumed, *(dead_letter_queue_name(queue) for queue in consumed),
              app.get("alerts", "queue_name"), exchange + BRIDGE_QUEUE_SUFFIX, *TUTORIAL_QUEUES,
              *(prefix + uid for uid in sorted(model_ids)),
              *(dead_letter_queue_name(prefix + uid) for uid in sorted(model_ids))]
    with MessageBus() as bus:
        for queue in queues:
            if bus.queue_exists(queue):
                bus.delete_queue(queue)
                report.queues.append(queue)
        bus.delete_exchange(exchange)
        report.exchanges.append(exchange)
    if drop_database(getDSN(app), db_name):
        report.database = db_name
    if root.exists():
        shutil.rmtree(root)
        report.checkpoints = str(root)
    return report
