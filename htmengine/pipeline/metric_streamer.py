"""Storing samples of one metric and streaming its stored rows to its model, crash-safely.

Two steps, two transactions (for one metric, or for a batch of metrics: `storeSamplesMany`,
`streamPendingRowsMany`):

1. `storeSamples`: under the metric row lock (SELECT ... FOR UPDATE) reject samples older than
   or equal to the last stored one, append the rest as rows with contiguous rowids, commit.
2. `streamPendingRows`: under the metric row lock again, send every stored row the model has
   not been sent yet — rowids after the durable high-water mark ``lastStreamedRowid`` kept in
   the metric's ``model_params`` JSON — in chunks of ``chunk_size``, then advance the mark in
   the same transaction. A batch id derived from (model, first rowid, last rowid) names each
   chunk, so a chunk sent again after a crash between send and commit is recognisable.

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
from htmengine.exceptions import InvalidInputError
from htmengine.model_swapper.errors import ModelNotFound
from htmengine.model_swapper.messages import ModelInputRow
from htmengine.repository import queries, schema, streaming_queries
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
            for index, group in enumerate(groups):
                if group.metricId in locked:
                    results[index] = self._storeIn(conn, group.metricId, group.samples,
                                                   group.source, group.metricName)
        return results

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
            name = metricId if metricName is None else f"{metricName} ({metricId})"
            for timestamp, value in samples:
                _log.error("Rejected sample of a metric in status %s: metric=%s ts=%s (%d) "
                           "value=%r source=%s", metric.status, name, timestamp,
                           _epoch(timestamp), value, source)
            engine_metrics.SAMPLES_REJECTED.labels("metric_status").inc(len(samples))
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
        sent = 0
        with self._engine.begin() as conn:
            for metricId, knownRows in sorted(pending, key=lambda item: item[0]):
                sent += self._streamIn(conn, metricId, knownRows)
        return sent

    def _streamOnce(self, metricId: str, knownRows: list[StoredRow] | None) -> int:
        with self._engine.begin() as conn:
            return self._streamIn(conn, metricId, knownRows)

    def _streamIn(self, conn: sa.Connection, metricId: str,
                  knownRows: list[StoredRow] | None) -> int:
        metric = queries.getMetricWithUpdateLock(
            conn, metricId, fields=[schema.metric.c.status, schema.metric.c.last_rowid,
                                    schema.metric.c.model_params])
        if metric.status not in STREAMABLE_STATUSES:
            return 0
        modelParams = loadModelParams(metric.model_params)
        mark = int(modelParams.get(STREAMED_ROWID_KEY, 0))
        lastRowid = metric.last_rowid or 0
        if lastRowid <= mark:
            return 0
        if (knownRows and knownRows[0].rowid == mark + 1
                and knownRows[-1].rowid == lastRowid):
            rows = knownRows
        else:
            rows = [StoredRow(r.rowid, r.timestamp, r.metric_value) for r in
                    streaming_queries.get_data_rows_after(conn, metricId, mark, lastRowid)]
        if not rows:
            _log.error("Model=%s: rows (%d..%d] are missing from metric_data", metricId,
                       mark, lastRowid)
            return 0
        lastSent = self._submit(metricId, rows)
        if lastSent <= mark:
            return 0
        modelParams[STREAMED_ROWID_KEY] = lastSent
        engine_metrics.record_streamed(modelParams, lastSent)
        queries.updateMetricColumns(conn, metricId,
                                    {"model_params": json.dumps(modelParams)})
        return lastSent - mark

    def _submit(self, metricId: str, rows: list[StoredRow]) -> int:
        """Send `rows` in chunks; returns the last rowid sent (the mark), which is short of
        the end only when the model's input queue has vanished (model deleted meanwhile)."""
        lastSent = rows[0].rowid - 1 if rows else 0
        for start in range(0, len(rows), self.chunkSize):
            chunk = rows[start:start + self.chunkSize]
            requests = [ModelInputRow(rowID=r.rowid, data=(r.timestamp, r.value))
                        for r in chunk]
            try:
                self._swapper.submitRequestBatch(
                    metricId, makeBatchId(metricId, chunk[0].rowid, chunk[-1].rowid), requests)
            except ModelNotFound as error:
                _log.warning("Model=%s has no input queue (deleted meanwhile?); rows from "
                             "%d stay unsent: %r", metricId, chunk[0].rowid, error)
                break
            lastSent = chunk[-1].rowid
            _log.debug("Sent rows [%d..%d] to model=%s", chunk[0].rowid, lastSent, metricId)
        return lastSent

    def resumeStreaming(self) -> int:
        """Send every model the rows stored but not yet sent (after a crash or a model start
        whose backlog was not sent); returns the number of rows sent."""
        with self._engine.connect() as conn:
            metricIds = streaming_queries.get_metric_ids_with_status(conn, STREAMABLE_STATUSES)
        total = 0
        for metricId in metricIds:
            sent = self.streamPendingRows(metricId)
            if sent:
                _log.info("Resumed streaming: sent %d unsent rows to model=%s", sent, metricId)
            total += sent
        return total
