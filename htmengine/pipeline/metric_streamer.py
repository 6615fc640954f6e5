"""Storing samples of one metric and streaming its stored rows to its model, crash-safely.

Two steps, two transactions (for one metric, or for a batch of metrics: `storeSamplesMany`,
`streamPendingRowsMany`):

1. `storeSamples`: under the metric row lock (SELECT ... FOR UPDATE) reject samples older than
   or equal to the last stored one, append the rest as rows with contiguous rowids, commit.
2. `streamPendingRows`: under the metric row lock again, send every stored row the model has
   not been sent yet — rowids after the durable high-water mark ``lastStreamedRowid`` kept in
   the metric's ``model_params`` JSON — in chunks of ``chunk_size`` (every chunk of the
   transaction's metrics in one batched publish, `ModelSwapperInterface.submitRequestBatches`),
   then advance the marks in the same transaction. A batch id derived from (model, first
   rowid, last rowid) names each chunk, so a chunk sent again after a crash between send and
   commit is recognisable.

Because step 2 starts from the durable mark rather than from what step 1 returned, a crash
anywhere between the two loses nothing: `resumeStreaming` (run when the storer starts) sends
whatever was committed but not yet sent, and the mark only moves after a confirmed publish.
Rows are therefore sent at least once, in order, and exactly once unless the process dies
between a confirmed publish and the commit of the mark (then one chunk goes again with the
same batch id; the anomaly service never scores a row twice).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from htmengine import engine_metrics
from htmengine.exceptions import InvalidInputError, ObjectNotFoundError
from htmengine.model_swapper.messages import ModelInputRow
from htmengine.repository import metric_data_queries, queries, schema, streaming_queries
from htmengine.repository.queries import MetricStatus
from nta_utils.db import retry_on_transient_error

_log = logging.getLogger("htmengine.pipeline.metric_streamer")

# Key of the durable streaming high-water mark inside metric.model_params (JSON).
STREAMED_ROWID_KEY = "lastStreamedRowid"

STREAMABLE_STATUSES = (MetricStatus.ACTIVE, MetricStatus.CREATE_PENDING)
STORABLE_STATUSES = (MetricStatus.UNMONITORED, MetricStatus.ACTIVE,
                     MetricStatus.CREATE_PENDING, MetricStatus.PENDING_DATA)


@dataclass(frozen=True)
class StoredRow:
    """A metric_data row as sent to a model."""

    rowid: int
    timestamp: datetime
    value: float


@dataclass
class StoreResult:
    """Outcome of `storeSamples`: the metric's status at storage time, its last rowid after
    it, the rows added and how many samples were rejected (out of order or duplicate)."""

    status: int
    datasource: str | None
    lastRowid: int
    rows: list[StoredRow]
    rejected: int
    dropped: bool = False   # nothing stored because of the metric's status (e.g. ERROR)


@dataclass
class _PendingStream:
    """A metric's rows not sent to its model yet (its row locked by the transaction)."""

    metricId: str
    modelParams: dict[str, Any]
    mark: int
    rows: list[StoredRow]


@dataclass(frozen=True)
class SampleGroup:
    """One metric's samples of a batch, for MetricStreamer.storeSamplesMany."""

    metricId: str
    samples: list[tuple[datetime, float]]
    source: str = "?"
    metricName: str | None = None


def loadModelParams(raw: str | None) -> dict[str, Any]:
    """metric.model_params decoded (empty dict when NULL or empty)."""
    if not raw:
        return {}
    decoded = json.loads(raw)
    return decoded if isinstance(decoded, dict) else {}


def makeBatchId(metricId: str, firstRowid: int, lastRowid: int) -> str:
    """Deterministic id of the input batch carrying rows [firstRowid, lastRowid] of a model."""
    return f"{metricId}-{firstRowid}-{lastRowid}"


def _epoch(timestamp: datetime) -> int:
    return int((timestamp - datetime(1970, 1, 1)).total_seconds())


def scrubSamples(samples: list[tuple[datetime, float]], lastTimestamp: datetime | None,
                 metricId: str, source: str = "?",
                 metricName: str | None = None) -> tuple[list[tuple[datetime, float]], int]:
    """Samples strictly newer than their predecessor (and than `lastTimestamp`); older ones
    and duplicates of the previous timestamp are logged and left out. Returns (kept, rejected).

    Rejections are warnings (bad input from the sender), or info for a redelivered message
    (its samples were most likely stored before a crash)."""
    level = logging.INFO if source.endswith("(redelivered)") else logging.WARNING
    metric = metricId if metricName is None else f"{metricName} ({metricId})"
    kept: list[tuple[datetime, float]] = []
    rejected = 0
    previous = lastTimestamp
    for timestamp, value in samples:
        if previous is not None and timestamp < previous:
            _log.log(level, "Rejected sample older than the previous one: metric=%s ts=%s (%d) "
                     "value=%r previousTs=%s source=%s", metric, timestamp,
                     _epoch(timestamp), value, previous, source)
            rejected += 1
            engine_metrics.SAMPLES_REJECTED.labels("out_of_order").inc()
        elif previous is not None and timestamp == previous:
            _log.log(level, "Rejected sample with duplicate timestamp: metric=%s ts=%s (%d) "
                     "value=%r source=%s", metric, timestamp, _epoch(timestamp), value,
                     source)
            rejected += 1
            engine_metrics.SAMPLES_REJECTED.labels("duplicate").inc()
        else:
            kept.append((timestamp, value))
            previous = timestamp
    return kept, rejected


class MetricStreamer:
    """Stores samples of custom metrics and streams stored rows to their models."""

    def __init__(self, engine: sa.Engine, swapper: Any, chunkSize: int = 1440) -> None:
        if chunkSize < 1:
            raise InvalidInputError(f"chunk_size must be >= 1, got {chunkSize}")
        self._engine = engine
        self._swapper = swapper
        self.chunkSize = chunkSize

    # ------------------------------------------------------------------ storing

    def storeSamples(self, metricId: str, samples: list[tuple[datetime, float]],
                     source: str = "?", metricName: str | None = None) -> StoreResult:
        """Append `samples` ((timestamp, value) in arrival order) to the metric's data in one
        transaction, rejecting out-of-order and duplicate timestamps; retried on transient
        errors. Nothing is stored for a metric in ERROR (or another unexpected status).

        :raises ObjectNotFoundError: the metric does not exist (deleted meanwhile)
        """
        return retry_on_transient_error(self._storeOnce)(metricId, samples, source, metricName)

    def storeSamplesMany(self, groups: list[SampleGroup]) -> list[StoreResult | None]:
        """storeSamples for several metrics in one transaction (one commit for them all),
        results in the order of `groups`. The metric rows another transaction holds (or
        that are missing) are skipped, not waited for: their result is None, for the caller
        to store them alone. All or nothing otherwise: any error (e.g. ObjectNotFoundError
        for a metric deleted meanwhile) rolls every metric back; retried as a whole on
        transient errors."""
        return retry_on_transient_error(self._storeManyOnce)(groups)

    def _storeManyOnce(self, groups: list[SampleGroup]) -> list[StoreResult | None]:
        results: list[StoreResult | None] = [None] * len(groups)
        with self._engine.begin() as conn:
            locked = streaming_queries.lock_free_metrics(conn, (g.metricId for g in groups))
            lastTimestamps = streaming_queries.get_data_timestamps(
                conn, {uid: row.last_rowid for uid, row in locked.items() if row.last_rowid})
            # each metric's (last rowid, last timestamp) as its samples are appended
            positions = {uid: (row.last_rowid or 0, lastTimestamps.get(uid))
                         for uid, row in locked.items()}
            appended: dict[str, list[tuple[float, datetime]]] = {}
            firstRowids: dict[str, int] = {}
            for index, group in enumerate(groups):
                metric = locked.get(group.metricId)
                if metric is None:
                    continue
                lastRowid, lastTimestamp = positions[group.metricId]
                if metric.status not in STORABLE_STATUSES:
                    self._dropSamples(group.metricId, group.metricName, metric.status,
                                      group.samples, group.source)
                    results[index] = StoreResult(metric.status, metric.datasource, lastRowid,
                                                 [], 0, True)
                    continue
                kept, rejected = scrubSamples(group.samples, lastTimestamp, group.metricId,
                                              group.source, group.metricName)
                rows = [StoredRow(rowid, timestamp, value)
                        for rowid, (timestamp, value) in enumerate(kept, lastRowid + 1)]
                if rows:
                    firstRowids.setdefault(group.metricId, lastRowid + 1)
                    appended.setdefault(group.metricId, []).extend(
                        (value, timestamp) for timestamp, value in kept)
                    positions[group.metricId] = (rows[-1].rowid, rows[-1].timestamp)
                results[index] = StoreResult(metric.status, metric.datasource,
                                             positions[group.metricId][0], rows, rejected)
            added = metric_data_queries.append_metric_data_many(
                conn, {uid: (firstRowids[uid] - 1, samples)
                       for uid, samples in appended.items()})
            engine_metrics.SAMPLES_STORED.inc(sum(len(rows) for rows in added.values()))
        return results

    @staticmethod
    def _dropSamples(metricId: str, metricName: str | None, status: int,
                     samples: list[tuple[datetime, float]], source: str) -> None:
        """Log and count the samples of a metric whose status does not store them."""
        name = metricId if metricName is None else f"{metricName} ({metricId})"
        for timestamp, value in samples:
            _log.error("Rejected sample of a metric in status %s: metric=%s ts=%s (%d) "
                       "value=%r source=%s", status, name, timestamp, _epoch(timestamp),
                       value, source)
        engine_metrics.SAMPLES_REJECTED.labels("metric_status").inc(len(samples))

    def _storeOnce(self, metricId: str, samples: list[tuple[datetime, float]],
                   source: str, metricName: str | None) -> StoreResult:
        with self._engine.begin() as conn:
            return self._storeIn(conn, metricId, samples, source, metricName)

    def _storeIn(self, conn: sa.Connection, metricId: str,
                 samples: list[tuple[datetime, float]], source: str,
                 metricName: str | None) -> StoreResult:
        metric = queries.getMetricWithUpdateLock(
            conn, metricId, fields=[schema.metric.c.status, schema.metric.c.last_rowid,
                                    schema.metric.c.datasource])
        lastRowid = metric.last_rowid or 0
        if metric.status not in STORABLE_STATUSES:
            self._dropSamples(metricId, metricName, metric.status, samples, source)
            return StoreResult(metric.status, metric.datasource, lastRowid, [], 0, True)
        lastTimestamp = (streaming_queries.get_data_timestamp(conn, metricId, lastRowid)
                         if lastRowid else None)
        kept, rejected = scrubSamples(samples, lastTimestamp, metricId, source, metricName)
        rows: list[StoredRow] = []
        if kept:
            added = queries.addMetricData(conn, metricId, [(v, ts) for ts, v in kept])
            rows = [StoredRow(r["rowid"], r["timestamp"], r["metric_value"]) for r in added]
            engine_metrics.SAMPLES_STORED.inc(len(rows))
            lastRowid = rows[-1].rowid
        return StoreResult(metric.status, metric.datasource, lastRowid, rows, rejected)

    # ------------------------------------------------------------------ streaming

    def streamPendingRows(self, metricId: str,
                          knownRows: list[StoredRow] | None = None) -> int:
        """Send the model every stored row after the metric's streaming mark, in chunks, and
        advance the mark; returns the number of rows sent (0 if the metric is not ACTIVE or
        CREATE_PENDING). `knownRows`, the rows just stored, saves a read when they are exactly
        the unsent ones. Retried as a whole on transient database errors."""
        return retry_on_transient_error(self._streamOnce)(metricId, knownRows)

    def streamPendingRowsMany(self, pending: list[tuple[str, list[StoredRow] | None]]
                              ) -> int:
        """streamPendingRows for several (metricId, knownRows) in one transaction (one
        commit; the metric rows are locked in uid order; every mark moves only after its rows'
        confirmed publish, all in that commit); returns the rows sent. Retried as a whole on
        transient database errors (chunks sent again keep their batch ids)."""
        return retry_on_transient_error(self._streamManyOnce)(pending)

    def _streamManyOnce(self, pending: list[tuple[str, list[StoredRow] | None]]) -> int:
        with self._engine.begin() as conn:
            locked = streaming_queries.lock_stream_positions(conn, (m for m, _ in pending))
            streams: list[_PendingStream] = []
            for metricId, knownRows in sorted(pending, key=lambda item: item[0]):
                metric = locked.get(metricId)
                if metric is None:
                    raise ObjectNotFoundError(f"Metric not found for uid={metricId}")
                stream = self._pendingOf(conn, metricId, metric, knownRows)
                if stream is not None:
                    streams.append(stream)
            return self._sendAndAdvance(conn, streams)

    def _streamOnce(self, metricId: str, knownRows: list[StoredRow] | None) -> int:
        with self._engine.begin() as conn:
            stream = self._pendingIn(conn, metricId, knownRows)
            return 0 if stream is None else self._sendAndAdvance(conn, [stream])

    def _pendingIn(self, conn: sa.Connection, metricId: str,
                   knownRows: list[StoredRow] | None) -> _PendingStream | None:
        """Lock the metric row; its unsent rows (None: none, or not streamable)."""
        metric = queries.getMetricWithUpdateLock(
            conn, metricId, fields=[schema.metric.c.status, schema.metric.c.last_rowid,
                                    schema.metric.c.model_params])
        return self._pendingOf(conn, metricId, metric, knownRows)

    @staticmethod
    def _pendingOf(conn: sa.Connection, metricId: str, metric: Any,
                   knownRows: list[StoredRow] | None) -> _PendingStream | None:
        """The unsent rows of the locked `metric` (status, last_rowid, model_params)."""
        if metric.status not in STREAMABLE_STATUSES:
            return None
        modelParams = loadModelParams(metric.model_params)
        mark = int(modelParams.get(STREAMED_ROWID_KEY, 0))
        lastRowid = metric.last_rowid or 0
        if lastRowid <= mark:
            return None
        if (knownRows and knownRows[0].rowid == mark + 1
                and knownRows[-1].rowid == lastRowid):
            rows = knownRows
        else:
            rows = [StoredRow(r.rowid, r.timestamp, r.metric_value) for r in
                    streaming_queries.get_data_rows_after(conn, metricId, mark, lastRowid)]
        if not rows:
            _log.error("Model=%s: rows (%d..%d] are missing from metric_data", metricId,
                       mark, lastRowid)
            return None
        return _PendingStream(metricId, modelParams, mark, rows)

    def _sendAndAdvance(self, conn: sa.Connection, streams: list[_PendingStream]) -> int:
        """Send the rows of `streams` in chunks (one wait for the broker for them all), then
        advance each metric's mark in the caller's transaction; returns the rows sent."""
        chunks = [(stream, stream.rows[start:start + self.chunkSize])
                  for stream in streams
                  for start in range(0, len(stream.rows), self.chunkSize)]
        sent = self._swapper.submitRequestBatches([
            (stream.metricId, makeBatchId(stream.metricId, chunk[0].rowid, chunk[-1].rowid),
             [ModelInputRow(rowID=r.rowid, data=(r.timestamp, r.value)) for r in chunk])
            for stream, chunk in chunks])
        lastSent = {stream.metricId: stream.mark for stream in streams}
        stopped: set[str] = set()
        for (stream, chunk), ok in zip(chunks, sent, strict=True):
            if stream.metricId in stopped:
                continue
            if not ok:
                _log.warning("Model=%s has no input queue (deleted meanwhile?); rows from "
                             "%d stay unsent", stream.metricId, chunk[0].rowid)
                stopped.add(stream.metricId)
                continue
            lastSent[stream.metricId] = chunk[-1].rowid
            _log.debug("Sent rows [%d..%d] to model=%s", chunk[0].rowid, chunk[-1].rowid,
                       stream.metricId)
        total = 0
        marks: dict[str, str] = {}
        for stream in streams:
            last = lastSent[stream.metricId]
            if last <= stream.mark:
                continue
            stream.modelParams[STREAMED_ROWID_KEY] = last
            engine_metrics.record_streamed(stream.modelParams, last)
            marks[stream.metricId] = json.dumps(stream.modelParams)
            total += last - stream.mark
        streaming_queries.set_model_params_many(conn, marks)
        return total

    def resumeStreaming(self) -> int:
        """Send every model the rows stored but not yet sent (after a crash or a model start
        whose backlog was not sent); returns the number of rows sent."""
        with self._engine.connect() as conn:
            metricIds = streaming_queries.get_metric_ids_with_unsent_rows(
                conn, STREAMABLE_STATUSES, STREAMED_ROWID_KEY)
        total = 0
        for metricId in metricIds:
            sent = self.streamPendingRows(metricId)
            if sent:
                _log.info("Resumed streaming: sent %d unsent rows to model=%s", sent, metricId)
            total += sent
        return total
