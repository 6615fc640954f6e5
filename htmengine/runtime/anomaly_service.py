"""Anomaly service: consumes model results, stores scores, publishes them to the results
exchange.

Run with ``python -m htmengine.runtime.anomaly_service``.

For each result batch of a model:

* command results: a failure puts the metric in ERROR with the message; a successful
  defineModel moves CREATE_PENDING to ACTIVE; anything else is only logged (delivery is at
  least once). Each is then published with header ``dataType: model-cmd-result``.
* inference results, in one transaction holding the metric row lock: dropped unless the metric
  is ACTIVE; their rowids must match ``metric_data`` rows exactly; an error result puts the
  metric in ERROR, except ``ERR_ROW_FAILED`` (the model failed on that row only): that row is
  marked (``display_value`` -1, no raw score) and not published, the others are scored; rows that already have a raw score (a redelivered batch) keep their stored
  values; the others get raw score, likelihood score and display value, and the likelihood
  state is saved in ``metric.model_params``. Then the batch (stored values) is published.

The batch is acked only after that, so a crash re-processes it without scoring any row twice.
A batch whose processing fails for another reason than a database or broker outage is tried
again (``interface_bus max_attempts`` times in all) and then goes to the results queue's
dead-letter queue; undecodable messages go there at once (`ModelSwapperInterface`).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa

from htmengine import engine_metrics
from htmengine.config import app_config
from htmengine.exceptions import (
    InvalidInputError,
    MetricStatusChangedError,
    ObjectNotFoundError,
    RejectedInferenceResultBatch,
)
from htmengine.htmengineerrno import ERR_ROW_FAILED
from htmengine.model_swapper.messages import ModelCommandResult, ModelInferenceResult, ResultItem
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.metric_streamer import loadModelParams
from htmengine.pipeline.results_serialization import (
    COMMAND_RESULT_HEADERS,
    COMMAND_RESULT_SCHEMA,
    INFERENCE_RESULTS_SCHEMA,
    composeCommandResultMessage,
    composeInferenceResultsMessage,
    deserializeModelResult,
    serializeModelResult,
    validateMessage,
)
from htmengine.repository import engineFactory, queries, streaming_queries
from htmengine.repository.queries import MetricStatus
from htmengine.runtime.anomaly_likelihood_helper import AnomalyLikelihoodHelper, ScoredRow
from htmengine.runtime.result_groups import result_groups
from htmengine.runtime.service_support import (
    StopFlag,
    configureServiceLogging,
    service_argument_parser,
    untilBrokerAnswers,
    untilDatabaseAnswers,
)
from nta_utils.bus import Bus
from nta_utils.db import retry_on_transient_error
from nta_utils.errors import BusConnectionError, BusError, DatabaseError
from nta_utils.message_bus import MessageBus, OutgoingMessage

_log = logging.getLogger("htmengine.runtime.anomaly_service")

LIKELIHOOD_PARAMS_KEY = "anomalyLikelihoodParams"


class _Steps(NamedTuple):
    """How a result batch's parts are applied: each in a transaction of its own, or all in
    the caller's (AnomalyService._applyBatch)."""

    activate: Callable[[str, list[ModelInferenceResult]],
                       tuple[Any, list[Any] | None] | None]
    command: Callable[[str, ModelCommandResult], Any | None]
    score: Callable[[str, list[ModelInferenceResult]], tuple[Any, list[Any]] | None]


@dataclass
class PublishedMessage:
    """A message to put on the results exchange."""

    message: dict[str, Any]
    headers: dict[str, str] | None = None


class AnomalyService:
    """Processes result batches; `processBatch` is the unit of work, `run` the service loop."""

    deserializeModelResult = staticmethod(deserializeModelResult)

    def __init__(self, engine: sa.Engine, likelihoodHelper: AnomalyLikelihoodHelper) -> None:
        self._engine = engine
        self.likelihoodHelper = likelihoodHelper

    # ------------------------------------------------------------------ command results

    def _processCommandResult(self, modelId: str, result: ModelCommandResult) -> Any | None:
        """Apply a command result to the metric; returns the metric row (None if unknown)."""
        return retry_on_transient_error(self._commandResultOnce)(modelId, result)

    def _commandResultOnce(self, modelId: str, result: ModelCommandResult) -> Any | None:
        with self._engine.begin() as conn:
            return self._commandResultIn(conn, modelId, result)

    def _commandResultIn(self, conn: sa.Connection, modelId: str,
                         result: ModelCommandResult) -> Any | None:
        """Apply a command result in the caller's transaction, under the metric row lock:
        the result of a defineModel can arrive before the transaction that set
        CREATE_PENDING and sent the command has committed (defineModelLocked); the lock
        waits for that commit instead of reading the status before it."""
        if result.method == "deleteModel":
            _log.info("Model=%s deleted (status=%s)", modelId, result.status)
        try:
            metric = queries.getMetricWithUpdateLock(conn, modelId)
        except ObjectNotFoundError:
            _log.warning("Command result %r for unknown model=%s (deleted?)", result, modelId)
            return None
        return self._applyCommandResult(conn, modelId, result, metric)

    def _applyCommandResult(self, conn: sa.Connection, modelId: str,
                            result: ModelCommandResult, metric: Any) -> Any:
        if result.method == "deleteModel":
            return metric
        if result.status != 0:
            _log.error("Model=%s command %s failed: %s", modelId, result.method,
                       result.errorMessage)
            if metric.status != MetricStatus.ERROR:
                queries.setMetricStatus(conn, modelId, MetricStatus.ERROR, result.errorMessage)
            return metric
        if result.method == "defineModel":
            if metric.status == MetricStatus.CREATE_PENDING:
                try:
                    queries.setMetricStatus(conn, modelId, MetricStatus.ACTIVE,
                                            refStatus=MetricStatus.CREATE_PENDING)
                    _log.info("Model=%s (%s) is ACTIVE", modelId, metric.name)
                except MetricStatusChangedError as error:
                    _log.warning("Model=%s changed status meanwhile: %r", modelId, error)
            else:
                _log.warning("defineModel result for model=%s in status %s (not "
                             "CREATE_PENDING); ignored", modelId, metric.status)
        else:
            _log.info("Command result for model=%s: %r", modelId, result)
        return metric

    # ------------------------------------------------------------------ inference results

    def _scoreInTransaction(self, modelId: str, results: list[ModelInferenceResult]
                            ) -> tuple[Any, list[Any]] | None:
        with self._engine.begin() as conn:
            return self._scoreIn(conn, modelId, results)

    def _scoreIn(self, conn: sa.Connection, modelId: str,
                 results: list[ModelInferenceResult]) -> tuple[Any, list[Any]] | None:
        """Score `results` in the caller's transaction: (metric, rows to publish), or None
        if they were dropped (metric unknown or not ACTIVE) or the metric went to ERROR."""
        try:
            metric = queries.getMetricWithUpdateLock(conn, modelId)
        except ObjectNotFoundError:
            _log.warning("Inference results for unknown model=%s (deleted?); dropped", modelId)
            return None
        if metric.status != MetricStatus.ACTIVE:
            _log.warning("Inference results for model=%s in status %s (not ACTIVE); "
                         "dropped rows [%s..%s]", modelId, metric.status,
                         results[0].rowID, results[-1].rowID)
            return None
        published = self._scoreLocked(conn, modelId, metric, results)
        return None if published is None else (metric, published)

    def _activateAndScore(self, modelId: str, results: list[ModelInferenceResult]
                          ) -> tuple[Any, list[Any] | None] | None:
        """A successful defineModel result followed by its model's first rows (one result
        message): the metric goes from CREATE_PENDING to ACTIVE and the rows are scored in
        one transaction. None (nothing done) unless the metric is CREATE_PENDING."""
        with self._engine.begin() as conn:
            return self._activateAndScoreIn(conn, modelId, results)

    def _activateAndScoreIn(self, conn: sa.Connection, modelId: str,
                            results: list[ModelInferenceResult]
                            ) -> tuple[Any, list[Any] | None] | None:
        """_activateAndScore in the caller's transaction."""
        try:
            metric = queries.getMetricWithUpdateLock(conn, modelId)
        except ObjectNotFoundError:
            return None
        if metric.status != MetricStatus.CREATE_PENDING:
            return None
        queries.setMetricStatus(conn, modelId, MetricStatus.ACTIVE,
                                refStatus=MetricStatus.CREATE_PENDING)
        published = self._scoreLocked(conn, modelId, metric, results)
        _log.info("Model=%s (%s) is ACTIVE", modelId, metric.name)
        return metric, published

    def _scoreLocked(self, conn: sa.Connection, modelId: str, metric: Any,
                     results: list[ModelInferenceResult]) -> list[Any] | None:
        """Score `results` of the ACTIVE metric locked by the caller's transaction; returns
        the rows to publish (None: the metric went to ERROR)."""
        first, last = results[0].rowID, results[-1].rowID
        if not isinstance(first, int) or not isinstance(last, int):
            raise RejectedInferenceResultBatch(
                f"model={modelId}: result rowids must be metric_data rowids (integers), "
                f"got {first!r}..{last!r}")
        rows = list(queries.getMetricData(conn, modelId, start=first, stop=last))
        self._checkRowsMatch(modelId, results, rows)
        failed = next((r for r in results if r.status not in (0, ERR_ROW_FAILED)), None)
        if failed is not None:
            _log.error("Model=%s failed on row %s; placing it in ERROR: %s", modelId,
                       failed.rowID, failed.errorMessage)
            queries.setMetricStatus(conn, modelId, MetricStatus.ERROR, failed.errorMessage)
            return None
        toScore: list[ScoredRow] = []
        published: list[Any] = []
        failedRows: list[int] = []
        for result, row in zip(results, rows, strict=True):
            if row.raw_anomaly_score is not None:
                published.append(_storedRow(row))
                continue
            if result.status == ERR_ROW_FAILED:
                _log.error("Model=%s failed on row %s only; the row is marked failed, the "
                           "metric stays ACTIVE: %s", modelId, row.rowid,
                           result.errorMessage)
                failedRows.append(row.rowid)
                continue
            if result.anomalyScore is None:
                raise RejectedInferenceResultBatch(
                    f"model={modelId}: result of row {row.rowid} has status "
                    f"{result.status} and no anomaly score")
            scored = ScoredRow(row.rowid, row.timestamp, row.metric_value,
                               result.anomalyScore,
                               multi_step_best_predictions=result.multiStepBestPredictions)
            toScore.append(scored)
            published.append(scored)
        if len(toScore) < len(rows):
            _log.info("Model=%s: %d of %d rows in [%s..%s] were scored already (redelivered "
                      "batch); keeping their stored values", modelId,
                      len(rows) - len(toScore), len(rows), rows[0].rowid, rows[-1].rowid)
        queries.markMetricDataRowsFailed(conn, modelId, failedRows)
        if toScore:
            modelParams = loadModelParams(metric.model_params)
            state = self.likelihoodHelper.updateModelAnomalyScores(
                conn, modelId, modelParams.get(LIKELIHOOD_PARAMS_KEY), toScore)
            streaming_queries.write_unscored_results(conn, modelId, toScore)
            engine_metrics.observe_scored(modelParams, [r.rowid for r in toScore])
            modelParams[LIKELIHOOD_PARAMS_KEY] = state
            queries.updateMetricColumns(conn, modelId,
                                        {"model_params": json.dumps(modelParams)})
        return published

    @staticmethod
    def _checkRowsMatch(modelId: str, results: list[ModelInferenceResult],
                        rows: list[Any]) -> None:
        resultIds = [r.rowID for r in results]
        rowIds = [r.rowid for r in rows]
        if resultIds != rowIds:
            raise RejectedInferenceResultBatch(
                f"model={modelId}: result rowids {_span(resultIds)} do not match metric_data "
                f"rowids {_span(rowIds)}")

    def _scoreAlone(self, modelId: str, results: list[ModelInferenceResult]
                    ) -> tuple[Any, list[Any]] | None:
        """Score and store a batch's rows in a transaction of their own; None if dropped
        (a rejected batch is logged and dropped)."""
        try:
            return retry_on_transient_error(self._scoreInTransaction)(modelId, results)
        except RejectedInferenceResultBatch as error:
            _log.error("Rejected inference result batch: %s", error)
            return None

    def _activateAlone(self, modelId: str, results: list[ModelInferenceResult]
                       ) -> tuple[Any, list[Any] | None] | None:
        """_activateAndScore in a transaction of its own; None if it did nothing (the batch
        is then processed item by item: the metric becomes ACTIVE, rejected rows dropped)."""
        try:
            return retry_on_transient_error(self._activateAndScore)(modelId, results)
        except RejectedInferenceResultBatch:
            return None

    @staticmethod
    def _scoredMessage(modelId: str, metric: Any, rows: list[Any],
                       results: list[ModelInferenceResult]) -> dict[str, Any]:
        """The exchange message of the scored `rows` of `results` (logged)."""
        _log.info("Scored %d row(s) of %s (model=%s, rows %s..%s)", len(rows), metric.name,
                  modelId, results[0].rowID, results[-1].rowID)
        return composeInferenceResultsMessage(metric, rows)

    @staticmethod
    def _commandResultMessages(modelId: str, result: ModelCommandResult,
                               metric: Any) -> list[PublishedMessage]:
        """The exchange message of a command result, if it conforms to its schema."""
        message = composeCommandResultMessage(modelId, result, metric)
        if _conforms(message, COMMAND_RESULT_SCHEMA):
            return [PublishedMessage(message, dict(COMMAND_RESULT_HEADERS))]
        return []

    # ------------------------------------------------------------------ batches

    def _definedAndScored(self, modelId: str, objects: tuple[ResultItem, ...],
                          steps: _Steps) -> list[PublishedMessage] | None:
        """A new model's usual first result message, a successful defineModel result and
        then rows, in one transaction (_activateAndScore); None to process it item by item
        (another shape, the metric not CREATE_PENDING, or a rejected result batch)."""
        define, rows = objects[0], objects[1:]
        if not (isinstance(define, ModelCommandResult) and define.method == "defineModel"
                and define.status == 0 and rows):
            return None
        results = [item for item in rows if isinstance(item, ModelInferenceResult)]
        if len(results) != len(rows):
            return None
        outcome = steps.activate(modelId, results)
        if outcome is None:
            return None
        metric, published = outcome
        outgoing = self._commandResultMessages(modelId, define, metric)
        if published:
            self._appendScored(outgoing, modelId, metric, published, results)
        return outgoing

    def _appendScored(self, outgoing: list[PublishedMessage], modelId: str, metric: Any,
                      rows: list[Any], results: list[ModelInferenceResult]) -> None:
        """Add the exchange message of scored `rows` to `outgoing` if it conforms."""
        inference = self._scoredMessage(modelId, metric, rows, results)
        if _conforms(inference, INFERENCE_RESULTS_SCHEMA):
            outgoing.append(PublishedMessage(inference))

    def _applyBatch(self, modelId: str, objects: tuple[ResultItem, ...],
                    steps: _Steps) -> list[PublishedMessage]:
        """Apply one result batch with `steps` (transactions of their own, or the caller's);
        returns the messages to publish."""
        combined = self._definedAndScored(modelId, objects, steps)
        if combined is not None:
            return combined
        outgoing: list[PublishedMessage] = []
        inference: list[ModelInferenceResult] = []
        for item in objects:
            if isinstance(item, ModelCommandResult):
                metric = steps.command(modelId, item)
                outgoing += self._commandResultMessages(modelId, item, metric)
            elif isinstance(item, ModelInferenceResult):
                inference.append(item)
            else:
                _log.error("Unsupported result item %r from model=%s", item, modelId)
        if inference:
            outcome = steps.score(modelId, inference)
            if outcome is not None and outcome[1]:
                self._appendScored(outgoing, modelId, outcome[0], outcome[1], inference)
        return outgoing

    def processBatch(self, modelId: str, objects: tuple[ResultItem, ...]
                     ) -> list[PublishedMessage]:
        """Apply one result batch to the database (a transaction per command result and
        one for the rows); returns the messages to publish."""
        return self._applyBatch(modelId, objects, _Steps(
            self._activateAlone, self._processCommandResult, self._scoreAlone))

    def processGroup(self, batches: list[tuple[str, tuple[ResultItem, ...]]]
                     ) -> list[list[PublishedMessage]] | None:
        """Apply several result batches, (model id, items) each, in one transaction (one
        commit instead of one or more per batch; the metric rows are locked in model id
        order); returns each batch's messages to publish, or None when one of them is
        rejected or fails for another reason than a database outage: nothing is applied
        then and the caller processes the batches one by one (processBatch)."""
        try:
            return retry_on_transient_error(self._groupOnce)(batches)
        except (DatabaseError, sa.exc.OperationalError, sa.exc.InterfaceError):
            raise
        except Exception as error:  # noqa: BLE001 - each batch is tried again on its own
            _log.info("A group of %d result batches failed (%r); processing them one by one",
                      len(batches), error)
            return None

    def _groupOnce(self, batches: list[tuple[str, tuple[ResultItem, ...]]]
                   ) -> list[list[PublishedMessage]]:
        outgoing: list[list[PublishedMessage]] = [[] for _ in batches]
        with self._engine.begin() as conn:
            steps = _Steps(functools.partial(self._activateAndScoreIn, conn),
                           functools.partial(self._commandResultIn, conn),
                           functools.partial(self._scoreIn, conn))
            # stable: a model's batches keep their order
            for index in sorted(range(len(batches)), key=lambda i: batches[i][0]):
                outgoing[index] = self._applyBatch(*batches[index], steps)
        return outgoing

    def _processSafely(self, batch: Any) -> list[PublishedMessage] | None:
        """processBatch, except that a batch failing for a reason other than a database or
        broker outage is tried again a bounded number of times and then goes to the
        dead-letter queue (None: it is acked already) instead of blocking the queue."""
        while True:
            try:
                return self.processBatch(batch.modelID, batch.objects)
            except (DatabaseError, BusError, sa.exc.OperationalError, sa.exc.InterfaceError):
                raise
            except Exception as error:  # noqa: BLE001 - a poison batch must not stop us
                reason = f"processing failed: {error!r}"[:2000]
                if batch.fail is None:
                    _log.exception("Dropping result batch of model=%s (%d items)",
                                   batch.modelID, len(batch.objects))
                    return []
                if batch.fail(reason):
                    return None
                time.sleep(0.1)

    def run(self, swapper: ModelSwapperInterface, bus: Bus, exchange: str,
            stop: StopFlag) -> None:
        """Consume results until `stop` is set: process the batches at hand (result_groups:
        several in one transaction), publish, then ack each batch."""
        declared, _ = untilBrokerAnswers(
            lambda: bus.declare_fanout_exchange(exchange, durable=True), stop)
        if not declared:
            return
        _log.info("Consuming model results; publishing to exchange %s", exchange)
        while not stop.isSet:
            try:
                for group in result_groups(swapper, stop):
                    if not self._applyGroup(group, bus, exchange, stop):
                        break      # stopping during a database outage: not acked
            except BusConnectionError as error:
                _log.debug("Lost the broker connection (%r); unacked results will be "
                           "redelivered; reconnecting", error)
                time.sleep(1.0)

    def _applyGroup(self, group: list[Any], bus: Bus, exchange: str, stop: StopFlag) -> bool:
        """Process the batches of `group` (in one transaction when there are several and
        none fails, else one by one), then publish each one's messages and ack it. False
        when stopped during a database outage (the unacked batches are redelivered)."""
        outcomes: list[list[PublishedMessage] | None] | None = None
        if len(group) > 1:
            done, grouped = untilDatabaseAnswers(functools.partial(
                self.processGroup, [(batch.modelID, batch.objects) for batch in group]), stop)
            if not done:
                return False
            outcomes = list(grouped) if grouped is not None else None
        if outcomes is None:
            outcomes = []
            for batch in group:
                done, processed = untilDatabaseAnswers(
                    functools.partial(self._processSafely, batch), stop)
                if not done:
                    return False
                outcomes.append(processed)
        # one wait for the broker for the group's messages, then the batches are acked
        bus.publish_many([
            OutgoingMessage(exchange, "", serializeModelResult(outgoing.message),
                            persistent=True, headers=outgoing.headers, mandatory=False)
            for outgoingMessages in outcomes if outgoingMessages is not None
            for outgoing in outgoingMessages])
        for batch, outgoingMessages in zip(group, outcomes, strict=True):
            if outgoingMessages is not None:   # else dead-lettered (and acked) already
                batch.ack()
        return True


def _conforms(message: dict[str, Any], schemaName: str) -> bool:
    try:
        validateMessage(message, schemaName)
    except InvalidInputError:
        _log.exception("Not publishing a message that breaks %s", schemaName)
        return False
    return True


def _storedRow(row: Any) -> ScoredRow:
    predictions = row.multi_step_best_predictions
    return ScoredRow(row.rowid, row.timestamp, row.metric_value, row.raw_anomaly_score,
                     row.anomaly_score if row.anomaly_score is not None else 0.0,
                     row.display_value or 0,
                     json.loads(predictions) if predictions else None)


def _span(ids: list[Any]) -> str:
    return f"[{ids[0]}..{ids[-1]}] ({len(ids)})" if ids else "[] (0)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m htmengine.runtime.anomaly_service``."""
    service_argument_parser(__doc__).parse_args(argv)
    configureServiceLogging("htmengine.runtime.anomaly_service")

    config = app_config()
    stop = StopFlag().install()
    engine_metrics.start_heartbeat("anomaly_service")
    service = AnomalyService(engineFactory(), AnomalyLikelihoodHelper.fromConfig(config))
    with ModelSwapperInterface() as swapper, MessageBus() as bus:
        service.run(swapper, bus, config.get("metric_streamer", "results_exchange_name"), stop)
    _log.info("Anomaly service stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
