"""What the API's routes work on: the database engine, the custom datasource adapter, and
one broker connection (pika is not thread-safe, so it is used under a lock) for queue depths
and for feeding models the samples posted to the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.api.errors import NotFound, Unavailable
from htmengine.api.settings import ApiSettings
from htmengine.config import app_config
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.metric_streamer import STREAMABLE_STATUSES, MetricStreamer, StoreResult
from htmengine.repository import api_queries, engineFactory
from htmengine.repository.api_queries import MetricSummary
from htmengine.repository.metric_status import MetricStatus
from nta_utils.errors import BusError, DatabaseError, QueueNotFoundError

DB_ERRORS = (DatabaseError, sa.exc.OperationalError, sa.exc.InterfaceError)


class EngineBackend:
    """Shared by every request of one API process."""

    def __init__(self, settings: ApiSettings, engine: sa.Engine | None = None) -> None:
        config = app_config()
        self.settings = settings
        self.engine = engine or engineFactory()
        self.chunk_size = config.getint("metric_streamer", "chunk_size")
        self.adapter = createDatasourceAdapter("custom", engine=self.engine,
                                               chunkSize=self.chunk_size)
        self.custom_queue = config.get("metric_listener", "queue_name")
        self.alerts_queue = config.get("alerts", "queue_name")
        self._lock = threading.Lock()
        self._swapper: ModelSwapperInterface | None = None

    def close(self) -> None:
        """Close the broker connection."""
        with self._lock:
            self._drop_swapper()

    def _drop_swapper(self) -> None:
        swapper, self._swapper = self._swapper, None
        if swapper is not None:
            try:
                swapper.close()
            except Exception:  # noqa: BLE001 - the connection is broken anyway
                pass

    @contextmanager
    def swapper(self) -> Iterator[ModelSwapperInterface]:
        """The shared swapper interface (and its bus), exclusively; reconnects after an
        error; BusError becomes Unavailable (503)."""
        with self._lock:
            try:
                if self._swapper is None:
                    self._swapper = ModelSwapperInterface()
                yield self._swapper
            except BusError as error:
                self._drop_swapper()
                raise Unavailable(f"RabbitMQ is unavailable: {error}") from error

    @contextmanager
    def db(self) -> Iterator[sa.Connection]:
        """A database connection; database errors become Unavailable (503)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except DB_ERRORS as error:
            raise Unavailable(f"MySQL is unavailable: {str(error)[:300]}") from error

    # ------------------------------------------------------------------ metrics

    def summary(self, name: str) -> MetricSummary:
        """The custom metric `name`; NotFound (404) naming it if there is none."""
        with self.db() as conn:
            found = api_queries.get_metric_summary_by_name(conn, name)
        if found is None:
            raise NotFound(f"unknown metric {name!r}")
        return found

    # ------------------------------------------------------------------ queues

    def queue_depth(self, queue: str) -> int | None:
        """Messages ready in `queue` (None if it does not exist)."""
        with self.swapper() as swapper:
            try:
                return swapper.bus.message_count(queue)
            except QueueNotFoundError:
                return None

    def model_input_depth(self, uid: str) -> int | None:
        """Batches waiting in the model's input queue (None: no queue)."""
        with self.swapper() as swapper:
            name = swapper.getModelInputQueueName(uid)
        return self.queue_depth(name)

    def queue_depths(self, model_uids: list[str]) -> dict[str, int | None]:
        """Depths of the engine's shared queues, plus ``model_input`` summed over
        `model_uids`."""
        with self.swapper() as swapper:
            names = {"custom_metrics": self.custom_queue,
                     "model_results": swapper.resultsQueueName,
                     "scheduler_notifications": swapper.schedulerNotificationQueueName,
                     "alerts": self.alerts_queue}
            inputs = [swapper.getModelInputQueueName(uid) for uid in model_uids]
        depths = {key: self.queue_depth(queue) for key, queue in names.items()}
        depths["model_input"] = sum(self.queue_depth(queue) or 0 for queue in inputs)
        return depths

    # ------------------------------------------------------------------ samples

    def store_samples(self, uid: str, samples: list[tuple[datetime, float]],
                      source: str) -> tuple[StoreResult, int]:
        """Store `samples` of metric `uid` as the metric storer does (out-of-order and
        duplicate timestamps rejected under the metric row lock), then send the new rows to
        the model or start a PENDING_DATA model; returns (result, rows sent to the model)."""
        with self.swapper() as swapper:
            streamer = MetricStreamer(self.engine, swapper, self.chunk_size)
            result = streamer.storeSamples(uid, samples, source)
            if not result.rows or result.status not in STREAMABLE_STATUSES:
                sent = 0
            else:
                sent = streamer.streamPendingRows(uid, knownRows=result.rows)
        if (result.rows and result.status == MetricStatus.PENDING_DATA
                and result.lastRowid >= self.settings.min_rows_for_model):
            self.adapter.activateModel(uid)
        return result, sent
