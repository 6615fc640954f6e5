"""Metric storer: consumes the custom-metrics queue in batches, stores the samples and feeds
the models.

Run with ``python -m htmengine.runtime.metric_storer``.

For each batch (up to ``[metric_storer] batch_size`` messages, or fewer after a short pause):
parse every line (a malformed line, a value outside the range the model can encode or a
timestamp beyond the horizon, see `sample_validation`, is logged once with its source and
skipped; the rest of the batch is kept), create unknown metrics as UNMONITORED custom metrics, store the batch's samples in
one transaction (out-of-order and duplicate timestamps rejected; metric by metric when that
fails), then by each metric's status: stream the new rows to its model (ACTIVE,
CREATE_PENDING; a transaction per STREAM_GROUP_METRICS metrics) or start its model once it has
``min_rows_for_model`` rows (PENDING_DATA). The batch is acked only after all that. At start-up
rows committed but never sent to a model (a crash in between) are sent first.

Database and broker outages are not swallowed: the process exits, supervisord restarts it and
the broker redelivers the unacked batch (already stored samples are then rejected as duplicates
and the unsent rows are streamed from the durable mark, see `metric_streamer`).

Poison messages go to the dead-letter queue ``<app>.dlq.<queue>`` (`nta_utils.dead_letter`)
with the reason in their headers, and the messages behind them flow on: a message that cannot
be decoded (not JSON of the expected shape, larger than ``[metric_storer] max_message_bytes``
or nested deeper than ``max_json_depth``, both checked before parsing) at once; a message
whose processing raises an unexpected error after ``max_attempts`` attempts (the batch is then
retried one message at a time, so only the poison one is held back).
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa

from htmengine import engine_metrics
from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.config import app_config
from htmengine.exceptions import (
    HTMEngineError,
    InvalidInputError,
    MetricStatisticsNotReadyError,
    MetricStatusChangedError,
    ObjectNotFoundError,
)
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.metric_streamer import (
    STREAMABLE_STATUSES,
    MetricStreamer,
    SampleGroup,
    StoredRow,
    StoreResult,
)
from htmengine.pipeline.plaintext import decodeBatchMessage, parsePlaintext
from htmengine.pipeline.sample_validation import (
    DEFAULT_FUTURE_HORIZON_SECONDS,
    check_sample,
    future_horizon_seconds,
    utc_now_naive,
)
from htmengine.repository import engineFactory, streaming_queries
from htmengine.repository.queries import MetricStatus
from htmengine.runtime.service_support import (
    StopFlag,
    configureServiceLogging,
    service_argument_parser,
    untilBrokerAnswers,
    untilDatabaseAnswers,
)
from nta_utils.bounded_json import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH
from nta_utils.bus import Bus
from nta_utils.dead_letter import DEFAULT_MAX_ATTEMPTS, DeadLetterQueue
from nta_utils.errors import BusConnectionError, BusError, DatabaseError
from nta_utils.message_bus import MessageBus
from nta_utils.message_bus_types import Message

_log = logging.getLogger("htmengine.runtime.metric_storer")

MAX_CACHED_METRICS = 15000
# Appended to the source of a redelivered message: its samples were probably stored before a
# crash, so their rejection as duplicates is expected (see metric_streamer.scrubSamples).
REDELIVERED_MARK = " (redelivered)"
IDLE_FLUSH_SECONDS = 0.05
# A batch's metrics are stored in transactions of at most this many metrics, and their new
# rows streamed in transactions of at most STREAM_GROUP_METRICS: one commit each, while the
# anomaly service (and the API) wait for a metric row locked by them only that long.
STORE_GROUP_METRICS = 200
STREAM_GROUP_METRICS = 50


@dataclass
class BatchStats:
    """What one batch did (for logs and tests)."""

    messages: int = 0
    lines: int = 0
    malformedLines: int = 0
    # (index in the batch, reason) of the messages that could not be decoded
    undecodable: list[tuple[int, str]] = field(default_factory=list)
    storedRows: int = 0
    rejectedSamples: int = 0
    streamedRows: int = 0
    metrics: int = 0
    failedMetrics: list[str] = field(default_factory=list)
    rowsByMetric: dict[str, int] = field(default_factory=dict)

    def describeMetrics(self, limit: int = 5) -> str:
        """'name (n rows), ...' of the metrics stored in this batch (the first `limit`)."""
        named = [f"{name} ({rows} row{'s' if rows != 1 else ''})"
                 for name, rows in list(self.rowsByMetric.items())[:limit]]
        more = len(self.rowsByMetric) - limit
        return ", ".join(named) + (f" and {more} more metrics" if more > 0 else "") or "none"


@dataclass
class _MetricSamples:
    samples: list[tuple[datetime, float]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, timestamp: datetime, value: float, source: str) -> None:
        self.samples.append((timestamp, value))
        if source not in self.sources:
            self.sources.append(source)


def _describeSources(sources: list[str]) -> str:
    """The first sources of a metric's samples, for log lines."""
    return ", ".join(sources[:5]) + (" ..." if len(sources) > 5 else "")


class StorerAdapter(Protocol):
    """What the storer uses of the datasource adapter (CustomDatasourceAdapter)."""

    def getOrCreateMetric(self, metricName: str) -> str:
        """The uid of the metric named `metricName`, created if missing."""
        ...

    def activateModel(self, metricId: str) -> bool:
        """Create the model of a PENDING_DATA metric; False if it exists already."""
        ...


class MetricStorer:
    """Turns batches of custom-metrics queue messages into stored rows and model input."""

    def __init__(self, engine: sa.Engine, swapper: ModelSwapperInterface,
                 adapter: StorerAdapter, chunkSize: int = 1440,
                 minRowsForModel: int = 288,
                 horizonSeconds: float = DEFAULT_FUTURE_HORIZON_SECONDS,
                 maxMessageBytes: int = DEFAULT_MAX_BYTES,
                 maxJsonDepth: int = DEFAULT_MAX_DEPTH) -> None:
        self._adapter = adapter
        self._engine = engine
        self.horizonSeconds = horizonSeconds
        self.maxMessageBytes = maxMessageBytes
        self.maxJsonDepth = maxJsonDepth
        self.streamer = MetricStreamer(engine, swapper, chunkSize)
        self.minRowsForModel = minRowsForModel
        self._metricIds: OrderedDict[str, str] = OrderedDict()   # name -> uid (LRU)

    # ------------------------------------------------------------------ parsing

    def parseMessages(self, messages: list[tuple[bytes, str]],
                      stats: BatchStats) -> OrderedDict[str, _MetricSamples]:
        """Samples grouped by metric name in arrival order; `messages` are (body, fallback
        source) pairs. Rejected lines are logged with their source; undecodable messages are
        recorded in `stats.undecodable` (the caller dead-letters them)."""
        byMetric: OrderedDict[str, _MetricSamples] = OrderedDict()
        now = utc_now_naive()
        for index, (body, fallbackSource) in enumerate(messages):
            stats.messages += 1
            try:
                lines, source = decodeBatchMessage(body, self.maxMessageBytes,
                                                   self.maxJsonDepth)
            except InvalidInputError as error:
                stats.undecodable.append((index, str(error)))
                continue
            source = source or fallbackSource
            if fallbackSource.endswith(REDELIVERED_MARK) and not source.endswith(REDELIVERED_MARK):
                source += REDELIVERED_MARK
            for line in lines:
                stats.lines += 1
                engine_metrics.SAMPLES_RECEIVED.inc()
                try:
                    sample = parsePlaintext(line)
                    check_sample(sample.metricName, sample.value, sample.timestamp,
                                 self.horizonSeconds, now)
                except InvalidInputError as error:
                    stats.malformedLines += 1
                    engine_metrics.SAMPLES_REJECTED.labels("malformed").inc()
                    _log.warning("Skipping malformed line from %s: %s", source, error)
                    continue
                byMetric.setdefault(sample.metricName, _MetricSamples()).add(
                    sample.timestamp, sample.value, source)
        return byMetric

    # ------------------------------------------------------------------ metrics

    def _metricId(self, name: str, refresh: bool = False) -> str:
        if not refresh and name in self._metricIds:
            self._metricIds.move_to_end(name)
            return self._metricIds[name]
        uid = self._adapter.getOrCreateMetric(name)
        self._metricIds[name] = uid
        self._metricIds.move_to_end(name)
        while len(self._metricIds) > MAX_CACHED_METRICS:
            self._metricIds.popitem(last=False)
        return uid

    def _sampleGroup(self, name: str, group: _MetricSamples) -> SampleGroup:
        """The metric's samples of the batch with its uid (created if new) and sources."""
        return SampleGroup(self._metricId(name), group.samples,
                           _describeSources(group.sources), name)

    def _storeMetric(self, name: str, group: _MetricSamples, stats: BatchStats) -> None:
        sampleGroup = self._sampleGroup(name, group)
        uid, source = sampleGroup.metricId, sampleGroup.source
        try:
            result = self.streamer.storeSamples(uid, group.samples, source, metricName=name)
        except ObjectNotFoundError:
            # Deleted (and maybe re-created) since we cached its uid.
            uid = self._metricId(name, refresh=True)
            result = self.streamer.storeSamples(uid, group.samples, source, metricName=name)
        if self._countStored(name, uid, result, stats):
            stats.streamedRows += self.streamer.streamPendingRows(uid, knownRows=result.rows)

    def _countStored(self, name: str, uid: str, result: StoreResult,
                     stats: BatchStats) -> bool:
        """Count a metric's stored samples in `stats`; True if it has new rows to stream,
        else (a metric not streamable yet) start its model if it has enough rows now."""
        stats.storedRows += len(result.rows)
        stats.rowsByMetric[name] = len(result.rows)
        stats.rejectedSamples += result.rejected
        if not result.rows:
            return False
        if result.status in STREAMABLE_STATUSES:
            return True
        self._activateIfReady(name, uid, result)
        return False

    def _activateIfReady(self, name: str, uid: str, result: StoreResult) -> None:
        """Start the model of a PENDING_DATA metric once it has enough rows."""
        if (result.status == MetricStatus.PENDING_DATA
                and result.lastRowid >= self.minRowsForModel):
            try:
                if self._adapter.activateModel(uid):
                    _log.info("Started the model of metric %s (%s) at %d rows", name, uid,
                              result.lastRowid)
            except (MetricStatisticsNotReadyError, MetricStatusChangedError,
                    ObjectNotFoundError) as error:
                _log.error("Could not start the model of metric %s (%s): %r", name, uid, error)

    def _storeMetricSafely(self, name: str, group: _MetricSamples, stats: BatchStats) -> None:
        """_storeMetric; an error other than an outage drops this metric's samples only."""
        try:
            self._storeMetric(name, group, stats)
        except (DatabaseError, BusError, sa.exc.OperationalError):
            raise
        except (HTMEngineError, sa.exc.SQLAlchemyError, ValueError) as error:
            stats.failedMetrics.append(name)
            _log.exception("Dropping %d samples of metric %s (sources: %s): %r",
                           len(group.samples), name, ", ".join(group.sources[:5]), error)

    def _resolveMetricIds(self, names: list[str]) -> None:
        """Cache the uids of the existing custom metrics among `names` with one query
        (the others are created one by one when stored)."""
        missing = [name for name in names if name not in self._metricIds]
        if not missing:
            return
        with self._engine.connect() as conn:
            found = streaming_queries.get_custom_metric_uids(conn, missing)
        for name, uid in found.items():
            self._metricIds[name] = uid
        while len(self._metricIds) > MAX_CACHED_METRICS:
            self._metricIds.popitem(last=False)

    def _storeTogether(self, names: list[str], byMetric: OrderedDict[str, _MetricSamples],
                       stats: BatchStats) -> bool:
        """Store the metrics `names` of the batch in one transaction, then stream the new
        rows of the streamable ones in transactions of STREAM_GROUP_METRICS metrics (one
        commit each instead of two per metric); a metric whose row another transaction
        holds is not waited for there but stored alone afterwards (the others do not wait
        for it). False, with nothing stored, when they must
        go metric by metric instead (one metric alone, or an error other than an outage:
        e.g. a metric deleted meanwhile; then each failing metric drops only its own
        samples, as before)."""
        if len(names) < 2:
            return False
        try:
            groups = [self._sampleGroup(name, byMetric[name]) for name in names]
            results = self.streamer.storeSamplesMany(groups)
        except (DatabaseError, BusError, sa.exc.OperationalError):
            raise
        except (HTMEngineError, sa.exc.SQLAlchemyError, ValueError) as error:
            _log.info("Storing %d metrics together failed (%r); storing them one by one",
                      len(names), error)
            return False
        toStream: list[tuple[str, list[StoredRow] | None]] = []
        skipped: list[str] = []
        for name, group, result in zip(names, groups, results, strict=True):
            if result is None:          # its row was locked elsewhere: stored alone below
                skipped.append(name)
                continue
            if self._countStored(name, group.metricId, result, stats):
                toStream.append((group.metricId, result.rows))
        for start in range(0, len(toStream), STREAM_GROUP_METRICS):
            self._streamTogether(toStream[start:start + STREAM_GROUP_METRICS], stats)
        for name in skipped:
            self._storeMetricSafely(name, byMetric[name], stats)
        return True

    def _streamTogether(self, part: list[tuple[str, list[StoredRow] | None]],
                        stats: BatchStats) -> None:
        """Stream the stored rows of several metrics in one transaction; each alone when
        that fails for another reason than an outage (a failing one keeps its rows for
        resumeStreaming, as before)."""
        try:
            stats.streamedRows += self.streamer.streamPendingRowsMany(part)
            return
        except (DatabaseError, BusError, sa.exc.OperationalError):
            raise
        except (HTMEngineError, sa.exc.SQLAlchemyError, ValueError):
            _log.info("Streaming %d metrics together failed; streaming them one by one",
                      len(part), exc_info=True)
        for metricId, rows in part:
            try:
                stats.streamedRows += self.streamer.streamPendingRows(metricId, rows)
            except (DatabaseError, BusError, sa.exc.OperationalError):
                raise
            except (HTMEngineError, sa.exc.SQLAlchemyError, ValueError) as error:
                _log.exception("Streaming the new rows of metric %s failed: %r", metricId,
                               error)

    def processMessages(self, messages: list[tuple[bytes, str]]) -> BatchStats:
        """Store one batch of queue messages ((body, source) pairs) and feed the models.

        Database and broker errors propagate (the caller must not ack); any other error of
        one metric is logged and only that metric's samples of this batch are dropped."""
        stats = BatchStats()
        byMetric = self.parseMessages(messages, stats)
        stats.metrics = len(byMetric)
        names = list(byMetric)
        if len(names) > 1:
            self._resolveMetricIds(names)
        # groups of metrics: bounded lock hold times, and the first models get their input
        # while the rest of a large batch is stored
        for start in range(0, len(names), STORE_GROUP_METRICS):
            group = names[start:start + STORE_GROUP_METRICS]
            if not self._storeTogether(group, byMetric, stats):
                for name in group:
                    self._storeMetricSafely(name, byMetric[name], stats)
        _log.info("Stored %s; batch: messages=%d undecodable=%d lines=%d malformed=%d "
                  "metrics=%d rows=%d rejected=%d streamed=%d", stats.describeMetrics(),
                  stats.messages, len(stats.undecodable), stats.lines, stats.malformedLines,
                  stats.metrics, stats.storedRows,
                  stats.rejectedSamples, stats.streamedRows)
        return stats

    # ------------------------------------------------------------------ service loop

    def _processAlone(self, message: Message, source: str, dlq: DeadLetterQueue) -> None:
        """Process one message until it succeeds or `dlq` takes it (bounded attempts)."""
        while True:
            try:
                stats = self.processMessages([(message.body, source)])
            except (DatabaseError, BusError, sa.exc.OperationalError):
                raise
            except Exception as error:  # noqa: BLE001 - a poison message must not stop us
                if dlq.failed(message, f"processing failed: {error!r}"[:2000]):
                    return
                time.sleep(0.1)
                continue
            for _index, reason in stats.undecodable:
                dlq.quarantine(message, reason)
            return

    def processQueueMessages(self, pending: list[Message], dlq: DeadLetterQueue) -> None:
        """Process consumed messages as one batch and dead-letter the undecodable ones; when
        the batch raises an unexpected error, process them one at a time so that only the
        poison message is retried (at most ``dlq.max_attempts`` times) and then
        dead-lettered. Database and broker errors propagate (nothing may be acked)."""
        sources = [f"queue message {m.delivery_tag}" + (REDELIVERED_MARK if m.redelivered
                                                        else "") for m in pending]
        try:
            stats = self.processMessages([(m.body, s) for m, s in zip(pending, sources,
                                                                       strict=True)])
        except (DatabaseError, BusError, sa.exc.OperationalError):
            raise
        except Exception as error:  # noqa: BLE001 - find the poison message below
            _log.warning("A batch of %d messages failed (%r); processing them one at a time",
                         len(pending), error)
            for message, source in zip(pending, sources, strict=True):
                marked = source if source.endswith(REDELIVERED_MARK) else (
                    source + REDELIVERED_MARK)
                self._processAlone(message, marked, dlq)
            return
        for index, reason in stats.undecodable:
            dlq.quarantine(pending[index], reason)

    def run(self, bus: Bus, queueName: str, batchSize: int, stop: StopFlag,
            maxAttempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        """Consume `queueName` until `stop` is set; ack each batch after it is stored and its
        poison messages are in the dead-letter queue."""
        dlq = DeadLetterQueue(bus, queueName, maxAttempts, _log)

        def declare() -> None:
            bus.declare_queue(queueName, durable=True)
            dlq.declare()

        declared, _ = untilBrokerAnswers(declare, stop)
        if not declared:
            return
        done, resumed = untilDatabaseAnswers(self.streamer.resumeStreaming, stop)
        if not done:
            return
        _log.info("Consuming %s (batch size %d); resumed %d unsent rows", queueName,
                  batchSize, resumed)
        while not stop.isSet:
            pending: list[Message] = []
            try:
                for message in bus.consume(queueName, prefetch=batchSize,
                                           inactivity_timeout=IDLE_FLUSH_SECONDS):
                    if message is not None:
                        pending.append(message)
                    if pending and (message is None or len(pending) >= batchSize):
                        done, _ = untilDatabaseAnswers(
                            functools.partial(self.processQueueMessages, pending, dlq), stop)
                        if not done:      # stopping during a database outage: not acked
                            break
                        bus.ack(pending[-1].delivery_tag, multiple=True)
                        pending = []
                    if stop.isSet:
                        break
            except BusConnectionError as error:
                _log.debug("Lost the broker connection (%r); unacked messages will be "
                           "redelivered; reconnecting", error)
                time.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m htmengine.runtime.metric_storer``."""
    service_argument_parser(__doc__).parse_args(argv)
    configureServiceLogging("htmengine.runtime.metric_storer")

    config = app_config()
    stop = StopFlag().install()
    engine_metrics.start_heartbeat("metric_storer")
    engine = engineFactory()
    chunkSize = config.getint("metric_streamer", "chunk_size")
    with ModelSwapperInterface() as swapper, MessageBus() as bus:
        storer = MetricStorer(
            engine, swapper, createDatasourceAdapter("custom", engine=engine,
                                                     chunkSize=chunkSize),
            chunkSize=chunkSize,
            minRowsForModel=config.getint("metric_storer", "min_rows_for_model"),
            horizonSeconds=future_horizon_seconds(),
            maxMessageBytes=config.getint("metric_storer", "max_message_bytes",
                                          fallback=DEFAULT_MAX_BYTES),
            maxJsonDepth=config.getint("metric_storer", "max_json_depth",
                                       fallback=DEFAULT_MAX_DEPTH))
        storer.run(bus, config.get("metric_listener", "queue_name"),
                   config.getint("metric_storer", "batch_size"), stop,
                   maxAttempts=config.getint("metric_storer", "max_attempts",
                                             fallback=DEFAULT_MAX_ATTEMPTS))
    _log.info("Metric storer stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
