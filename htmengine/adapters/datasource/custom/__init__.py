"""Datasource adapter of custom metrics: metrics fed through the graphite listener (or any
writer of the custom-metrics queue), modelled on demand.

Obtain it with ``htmengine.adapters.datasource.createDatasourceAdapter("custom")``.
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from htmengine.adapters.datasource.spec_validation import validateModelSpec
from htmengine.config import app_config
from htmengine.exceptions import (
    InvalidInputError,
    MetricAlreadyExists,
    MetricAlreadyMonitored,
    MetricNotMonitoredError,
    MetricStatisticsNotReadyError,
    MetricStatusChangedError,
)
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline import scalar_metric_utils
from htmengine.pipeline.metric_streamer import MetricStreamer
from htmengine.pipeline.plaintext import MAX_METRIC_NAME_LENGTH
from htmengine.repository import engineFactory, queries, schema
from htmengine.repository.queries import MetricStatus
from nta_utils.db import retry_on_transient_error

_log = logging.getLogger("htmengine.adapters.datasource.custom")

DATASOURCE = "custom"
EXPORT_DAYS = 14
# Each end of the range estimated from stored data is widened by this share of the range.
RANGE_PADDING = 0.2
_SERVER_COLUMN_LENGTH = 100
_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def _defaultSwapperFactory() -> AbstractContextManager[ModelSwapperInterface]:
    return ModelSwapperInterface()


def _parseImportTimestamp(value: Any, index: int) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        for parser in (lambda v: datetime.strptime(v, _TIMESTAMP_FORMAT),
                       datetime.fromisoformat):
            try:
                return parser(value)
            except ValueError:
                continue
    raise InvalidInputError(
        f"spec.data[{index}] timestamp must be 'YYYY-mm-dd HH:MM:SS', got {value!r}")


class CustomDatasourceAdapter:
    """Creates, monitors, unmonitors, exports and imports custom metrics and their models."""

    DATASOURCE = DATASOURCE
    DEFAULT_METRIC_PERIOD = 300  # seconds; custom metrics are expected every 5 minutes

    def __init__(self, engine: sa.Engine | None = None,
                 swapperFactory: Callable[[], AbstractContextManager[ModelSwapperInterface]]
                 | None = None,
                 chunkSize: int | None = None) -> None:
        if engine is None:
            engine = engineFactory()
        if chunkSize is None:
            chunkSize = app_config().getint("metric_streamer", "chunk_size")
        self._engine = engine
        self._swapperFactory = swapperFactory or _defaultSwapperFactory
        self._chunkSize = chunkSize

    # ------------------------------------------------------------------ metrics

    def createMetric(self, metricName: str) -> str:
        """Create an UNMONITORED custom metric; returns its uid.

        :raises MetricAlreadyExists: a custom metric with this name exists (`.uid` is its uid)
        :raises InvalidInputError: the name is empty, too long or not a string
        """
        if not isinstance(metricName, str) or not metricName.strip():
            raise InvalidInputError(f"metric name must be a non-empty string, got {metricName!r}")
        if len(metricName) > MAX_METRIC_NAME_LENGTH:
            raise InvalidInputError(
                f"metric name {metricName[:40]!r}... is longer than {MAX_METRIC_NAME_LENGTH}")
        with self._engine.connect() as conn:
            row = queries.addMetric(
                conn, name=metricName, datasource=DATASOURCE,
                description=f"Custom metric {metricName}"[:200],
                server=metricName[:_SERVER_COLUMN_LENGTH], location="",
                poll_interval=self.DEFAULT_METRIC_PERIOD, status=MetricStatus.UNMONITORED)
        uid = str(row.uid)
        _log.info("Created custom metric name=%s uid=%s", metricName, uid)
        return uid

    def getOrCreateMetric(self, metricName: str) -> str:
        """The uid of the custom metric `metricName`, created if missing."""
        try:
            return self.createMetric(metricName)
        except MetricAlreadyExists as error:
            if error.uid is None:   # not raised so by addMetric; nothing to return
                raise
            return error.uid

    def deleteMetricByName(self, metricName: str) -> None:
        """Delete the custom metric, its data and its model (if any).

        :raises ObjectNotFoundError: no custom metric has this name
        """
        with self._engine.connect() as conn:
            metric = queries.getCustomMetricByName(
                conn, metricName, fields=[schema.metric.c.uid, schema.metric.c.status])
        if metric.status != MetricStatus.UNMONITORED:
            self.unmonitorMetric(metric.uid)
        with self._engine.connect() as conn:
            queries.deleteMetric(conn, metric.uid)
        _log.info("Deleted custom metric name=%s uid=%s", metricName, metric.uid)

    # ------------------------------------------------------------------ models

    def _metricStatistics(self, metricId: str) -> dict[str, float]:
        """min/max of the stored values widened by 20% of the range at each end.

        :raises MetricStatisticsNotReadyError: no data
        """
        with self._engine.connect() as conn:
            stats = queries.getMetricStats(conn, metricId)
        minVal, maxVal = float(stats["min"]), float(stats["max"])
        if maxVal <= minVal:
            maxVal = minVal + 1
        padding = (maxVal - minVal) * RANGE_PADDING
        return {"min": minVal - padding, "max": maxVal + padding}

    def _resolveMetric(self, modelSpec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(metric uid, spec in canonical form naming the metric by name)."""
        metricSpec = modelSpec["metricSpec"]
        if "uid" in metricSpec:
            metricId = metricSpec["uid"]
            with self._engine.connect() as conn:
                metric = queries.getMetric(conn, metricId, fields=[schema.metric.c.name])
            modelSpec = copy.deepcopy(modelSpec)
            modelSpec["metricSpec"].pop("uid")
            modelSpec["metricSpec"]["metric"] = metric.name
            return metricId, modelSpec
        return self.getOrCreateMetric(metricSpec["metric"]), modelSpec

    def _swarmParamsFor(self, metricId: str, modelSpec: dict[str, Any]
                        ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(model parameters or None to wait for data, encoder range when known)."""
        if "completeModelParams" in modelSpec:
            return (scalar_metric_utils.generateSwarmParamsFromCompleteModelParams(modelSpec),
                    None)
        modelParams = modelSpec.get("modelParams") or {}
        stats: dict[str, Any] = {"min": modelParams.get("min"), "max": modelParams.get("max"),
                                 "minResolution": modelParams.get("minResolution")}
        if stats["min"] is None:
            with self._engine.connect() as conn:
                numRows = queries.getMetricDataCount(conn, metricId)
            if numRows >= scalar_metric_utils.MODEL_CREATION_RECORD_THRESHOLD:
                stats.update(self._metricStatistics(metricId))
        return scalar_metric_utils.generateSwarmParams(
            stats, bool(modelParams.get("enableClassifier", False))), stats

    def monitorMetric(self, modelSpec: dict[str, Any]) -> str:
        """Start monitoring a custom metric (created if named and missing); returns its uid.

        With min and max in ``modelParams`` (or ``completeModelParams``), or with at least 288
        stored rows, the model is requested at once (CREATE_PENDING); otherwise the metric
        waits in PENDING_DATA and the storer starts the model at 288 rows.

        :raises InvalidInputError: the spec does not follow model_spec_schema.json (the message
            names the field), or gives only one of min/max
        :raises ObjectNotFoundError: `metricSpec.uid` names no metric
        :raises MetricAlreadyMonitored: the metric already has a model (`.uid` is its uid)
        """
        validateModelSpec(modelSpec)
        if modelSpec["datasource"] != DATASOURCE:
            raise InvalidInputError(
                f"modelSpec.datasource must be {DATASOURCE!r}, got {modelSpec['datasource']!r}")
        metricId, modelSpec = self._resolveMetric(modelSpec)
        swarmParams, modelRange = self._swarmParamsFor(metricId, modelSpec)
        with self._swapperFactory() as swapper:
            started = retry_on_transient_error(self._startMonitoring)(
                metricId, modelSpec, swarmParams, swapper, modelRange)
            if started:
                MetricStreamer(self._engine, swapper, self._chunkSize).streamPendingRows(metricId)
        return metricId

    def _startMonitoring(self, metricId: str, modelSpec: dict[str, Any],
                         swarmParams: dict[str, Any] | None, swapper: Any,
                         modelRange: dict[str, Any] | None = None) -> bool:
        with self._engine.begin() as conn:
            metric = queries.getMetricWithUpdateLock(conn, metricId)
            if metric.datasource != DATASOURCE:
                raise InvalidInputError(
                    f"metric {metricId} has datasource {metric.datasource!r}, not {DATASOURCE!r}")
            if metric.status != MetricStatus.UNMONITORED:
                raise MetricAlreadyMonitored(
                    f"Custom metric {metric.name!r} is already monitored (status "
                    f"{MetricStatus(metric.status).name})", uid=metricId)
            update: dict[str, Any] = {"parameters": json.dumps(modelSpec)}
            resource = self.getInstanceNameForModelSpec(modelSpec)
            if resource is not None:
                update["server"] = resource
            queries.updateMetricColumns(conn, metricId, update)
            if swarmParams is None:
                scalar_metric_utils.setPendingData(conn, metricId, MetricStatus.UNMONITORED)
                _log.info("Metric %s waits for data (PENDING_DATA)", metricId)
                return False
            return scalar_metric_utils.defineModelLocked(conn, metricId, swarmParams, swapper,
                                                         modelRange)

    def activateModel(self, metricId: str) -> bool:
        """Create the model of a PENDING_DATA metric from its data's range and send it the
        stored rows; returns False if the model already exists.

        :raises ObjectNotFoundError: no such metric
        :raises MetricStatisticsNotReadyError: the metric has no data
        :raises MetricNotMonitoredError: the metric is UNMONITORED (a MetricStatusChangedError)
        :raises MetricStatusChangedError: the metric is in ERROR
        """
        with self._engine.connect() as conn:
            metric = queries.getMetric(conn, metricId, fields=[
                schema.metric.c.datasource, schema.metric.c.parameters, schema.metric.c.status])
        if metric.datasource != DATASOURCE:
            raise InvalidInputError(
                f"metric {metricId} has datasource {metric.datasource!r}, not {DATASOURCE!r}")
        if metric.status in (MetricStatus.CREATE_PENDING, MetricStatus.ACTIVE):
            return False
        if metric.status == MetricStatus.UNMONITORED:
            raise MetricNotMonitoredError(
                f"cannot activate the model of metric {metricId}: it is not monitored "
                f"(status {metric.status}, not PENDING_DATA)")
        if metric.status != MetricStatus.PENDING_DATA:
            raise MetricStatusChangedError(
                f"cannot activate the model of metric {metricId}: status is {metric.status}, "
                f"not PENDING_DATA")
        spec = json.loads(metric.parameters) if metric.parameters else {}
        enableClassifier = bool((spec.get("modelParams") or {}).get("enableClassifier", False))
        stats = self._metricStatistics(metricId)
        minResolution = (spec.get("modelParams") or {}).get("minResolution")
        if minResolution is not None:
            stats["minResolution"] = minResolution
        swarmParams = scalar_metric_utils.generateSwarmParams(stats, enableClassifier)
        if swarmParams is None:
            raise MetricStatisticsNotReadyError(f"metric {metricId} has no value range yet")

        def defineInTransaction(swapper: Any) -> bool:
            with self._engine.begin() as conn:
                return scalar_metric_utils.defineModelLocked(conn, metricId, swarmParams,
                                                             swapper, stats)

        with self._swapperFactory() as swapper:
            started = retry_on_transient_error(defineInTransaction)(swapper)
            if started:
                MetricStreamer(self._engine, swapper, self._chunkSize).streamPendingRows(metricId)
        return started

    def unmonitorMetric(self, metricId: str) -> None:
        """Forget the metric's model (status UNMONITORED, scores cleared) and delete it from
        the model swapper.

        :raises ObjectNotFoundError: no such metric
        """
        with self._engine.connect() as conn:
            queries.deleteModel(conn, metricId)
        with self._swapperFactory() as swapper:
            swapper.deleteModel(modelID=metricId, commandID=uuid.uuid4().hex)
        _log.info("Unmonitored metric %s", metricId)

    # ------------------------------------------------------------------ export / import

    def exportModel(self, metricId: str) -> dict[str, Any]:
        """The metric's model spec plus ``data``: ``(value, datetime)`` pairs of the samples
        of the last 14 days (from now, UTC), oldest first, as the original engine exported
        them; `importModel` takes them back as they are or after a JSON round trip through
        `htmengine.utils.jsonEncode` / `jsonDecode` (timestamps as "YYYY-mm-dd HH:MM:SS").

        :raises ObjectNotFoundError: no such metric
        """
        md = schema.metric_data
        since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=EXPORT_DAYS)
        with self._engine.connect() as conn:
            metric = queries.getMetric(conn, metricId)
            if metric.datasource != DATASOURCE:
                raise InvalidInputError(
                    f"metric {metricId} has datasource {metric.datasource!r}, not {DATASOURCE!r}")
            rows = list(queries.getMetricData(
                conn, metricId, fields=[md.c.metric_value, md.c.timestamp],
                fromTimestamp=since))
        spec: dict[str, Any]
        if metric.parameters:
            spec = json.loads(metric.parameters)
        else:
            spec = {"datasource": DATASOURCE, "metricSpec": {"metric": metric.name}}
        spec["data"] = [(row.metric_value, row.timestamp) for row in rows]
        return spec

    def importModel(self, spec: dict[str, Any]) -> str:
        """Re-create a metric from `exportModel` output: create it if missing, add ``data``
        only if it has none, then monitor it (unless it is already monitored); returns its uid.

        :raises InvalidInputError: the spec or its data is malformed (the message names it)
        """
        if not isinstance(spec, dict):
            raise InvalidInputError(f"spec must be an object, got {type(spec).__name__}")
        modelSpec = {key: value for key, value in spec.items() if key != "data"}
        validateModelSpec(modelSpec)
        metricName = modelSpec["metricSpec"].get("metric")
        if metricName is None:
            raise InvalidInputError("spec.metricSpec.metric must name the metric to import")
        data = spec.get("data") or []
        if not isinstance(data, list):
            raise InvalidInputError("spec.data must be a list of [value, timestamp] pairs")
        samples = []
        for index, item in enumerate(data):
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise InvalidInputError(f"spec.data[{index}] must be [value, timestamp]")
            samples.append((item[0], _parseImportTimestamp(item[1], index)))
        metricId = self.getOrCreateMetric(metricName)
        with self._engine.connect() as conn:
            metric = queries.getMetric(conn, metricId, fields=[schema.metric.c.status])
        if metric.status != MetricStatus.UNMONITORED:
            _log.info("importModel: metric %s is already monitored", metricId)
            return metricId
        if samples:
            retry_on_transient_error(self._addDataIfEmpty)(metricId, samples)
        return self.monitorMetric(modelSpec)

    def _addDataIfEmpty(self, metricId: str, samples: list[tuple[Any, datetime]]) -> None:
        with self._engine.begin() as conn:
            metric = queries.getMetricWithUpdateLock(conn, metricId,
                                                     fields=[schema.metric.c.last_rowid])
            if metric.last_rowid:
                _log.info("importModel: metric %s already has data; not adding", metricId)
                return
            queries.addMetricData(conn, metricId, samples)

    @staticmethod
    def getInstanceNameForModelSpec(spec: dict[str, Any]) -> str | None:
        """The resource named by the spec's metricSpec, if any."""
        resource = spec.get("metricSpec", {}).get("resource")
        return None if resource is None else str(resource)
