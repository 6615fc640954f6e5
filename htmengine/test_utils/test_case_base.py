"""`TestCaseBase`: a unittest.TestCase with checks that poll the engine's repository until the
asynchronous services have done their work (the original engine's test base class, same
method names and semantics)."""

from __future__ import annotations

import functools
import json
import logging
import socket
import time
import unittest
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import htmengine.exceptions as app_exceptions
from htmengine import repository
from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.exceptions import MetricAlreadyMonitored
from htmengine.model_checkpoint_mgr import model_checkpoint_mgr
from htmengine.repository import schema
from htmengine.repository.queries import MetricStatus

LOGGER = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


def retry(duration: float = 15, delay: float = 0.5,
          exceptionTypes: tuple[type[BaseException], ...] = (AssertionError,)
          ) -> Callable[[_F], _F]:
    """Decorator: call the check again every `delay` seconds while it raises one of
    `exceptionTypes`, for at most `duration` seconds; then re-raise the last error."""
    def retryDecorator(f: _F) -> _F:
        @functools.wraps(f)
        def newFunc(*args: Any, **kwargs: Any) -> Any:
            deadline = time.time() + duration
            attempt = 0
            while True:
                attempt += 1
                try:
                    LOGGER.debug("Attempt %d of %s", attempt, f.__name__)
                    return f(*args, **kwargs)
                except exceptionTypes:
                    if time.time() + delay >= deadline:
                        raise
                    time.sleep(delay)
        return newFunc  # type: ignore[return-value]
    return retryDecorator


class TestCaseBase(unittest.TestCase):
    """Adds engine-specific helpers and polling checks; a derived class sets `config` (the
    application.conf `Config`) before using them."""

    config: Any = None

    @property
    def _config(self) -> Any:
        if self.config is None:
            raise ValueError(f"Did {self!r} forget to set config member variable")
        return self.config

    def _engine(self) -> Any:
        return repository.engineFactory(config=self._config)

    def _deleteMetric(self, metricName: str) -> None:
        createDatasourceAdapter("custom").deleteMetricByName(metricName)

    def _deleteModel(self, metricId: str) -> None:
        createDatasourceAdapter("custom").unmonitorMetric(metricId)

    def _createModel(self, nativeMetric: dict[str, Any]) -> Any:
        """monitorMetric (tolerating an already monitored metric); returns the metric row."""
        try:
            metricId = createDatasourceAdapter("custom").monitorMetric(nativeMetric)
        except MetricAlreadyMonitored as e:
            if e.uid is None:   # no uid to return the metric of
                raise
            metricId = e.uid
        with self._engine().begin() as conn:
            return repository.getMetric(conn, metricId)

    def fastCheckSequenceEqual(self, seq1: Sequence[Any], seq2: Sequence[Any]) -> None:
        """Element-wise equality of two long sequences, reporting the first difference."""
        self.assertEqual(len(seq1), len(seq2))
        for i, (item1, item2) in enumerate(zip(seq1, seq2, strict=True)):
            assert item1 == item2, (
                f"seq1 != seq2; First difference at index={i}: {item1!r} != {item2!r}")

    def _assertNoCheckpoint(self, uid: str) -> None:
        with self.assertRaises(model_checkpoint_mgr.ModelNotFound):
            model_checkpoint_mgr.ModelCheckpointMgr().loadModelDefinition(uid)

    @retry(duration=45, delay=1)
    def checkModelIsActive(self, uid: str) -> None:
        """The metric's status becomes ACTIVE."""
        with self._engine().begin() as conn:
            metricObj = repository.getMetric(conn, uid, fields=[schema.metric.c.status])
        self.assertEqual(metricObj.status, MetricStatus.ACTIVE)

    @retry(duration=30, delay=1)
    def checkMetricUnmonitoredById(self, uid: str) -> None:
        """The metric is UNMONITORED, without parameters, and its model checkpoint is gone."""
        with self._engine().begin() as conn:
            metricObj = repository.getMetric(
                conn, uid, fields=[schema.metric.c.status, schema.metric.c.parameters])
        self.assertEqual(metricObj.status, MetricStatus.UNMONITORED)
        self.assertIsNone(metricObj.parameters)
        self._assertNoCheckpoint(uid)

    @retry()
    def checkStats(self, metricName: str, mn: float, mx: float) -> None:
        """getMetricStats of the named custom metric gives min `mn` and max `mx`."""
        with self._engine().begin() as conn:
            metricObj = repository.getCustomMetricByName(
                conn, metricName, fields=[schema.metric.c.uid, schema.metric.c.parameters])
            stats = repository.getMetricStats(conn, metricObj.uid)
        self.assertSetEqual(set(stats.keys()), {"min", "max"})
        self.assertAlmostEqual(stats["min"], mn)
        self.assertAlmostEqual(stats["max"], mx)

    @retry()
    def checkEncoderResolution(self, uid: str, minVal: float, maxVal: float,
                               minResolution: float | None = None) -> None:
        """The value encoder's resolution lies in [(max-min)/300, (max-min)/80] (or is at
        least `minResolution` when given)."""
        with self._engine().begin() as conn:
            metricObj = repository.getMetric(
                conn, uid, fields=[schema.metric.c.name, schema.metric.c.model_params])
        modelParams = json.loads(metricObj.model_params)
        self.assertNotEqual(modelParams, None, f"No model exists for metric {metricObj.name}")
        sensorParams = modelParams["modelConfig"]["modelParams"]["sensorParams"]
        encoderParams = sensorParams["encoders"]["c1"]
        lower = (maxVal - minVal) / 300.0
        upper = (maxVal - minVal) / 80.0
        if minResolution is not None:
            lower = max(minResolution, lower)
            upper = float("inf")
        resolution = encoderParams["resolution"]
        self.assertGreaterEqual(resolution, lower)
        self.assertLessEqual(resolution, upper)

    @retry(duration=25)
    def checkModelDeleted(self, uid: str) -> None:
        """The metric is gone, no model lists it, and its checkpoint is gone."""
        with self._engine().begin() as conn:
            try:
                repository.getMetric(conn, uid)
                raise Exception("Metric not deleted as expected")
            except app_exceptions.ObjectNotFoundError:
                pass
            for model in repository.getAllModels(conn):
                self.assertNotEqual(model.uid, uid, "Model showing up after deletion.")
        self._assertNoCheckpoint(uid)

    @retry(duration=100, delay=1)
    def checkModelResultsSize(self, uid: str, size: int, atLeast: bool = False) -> None:
        """The metric has `size` metric_data rows (at least `size` with `atLeast`)."""
        with self._engine().begin() as conn:
            result = repository.getMetricData(conn, metricId=uid)
            rows = result.fetchall()
        if atLeast:
            self.assertGreaterEqual(len(rows), size)
        else:
            self.assertEqual(len(rows), size)
        for row in rows:
            self.assertIsNotNone(row)

    @retry(duration=30)
    def checkMetricCreated(self, metricName: str, numRecords: int | None = None) -> str:
        """The custom metric exists (with at least `numRecords` rows); returns its uid."""
        with self._engine().begin() as conn:
            metrics = repository.getCustomMetrics(conn).fetchall()
        for metric in metrics:
            if metric.name == metricName:
                if numRecords:
                    self.assertGreaterEqual(metric.last_rowid, numRecords)
                return str(metric.uid)
        raise AssertionError("Metric not created!")

    @retry(duration=75, delay=1)
    def checkModelResults(self, uid: str, expectedResults: Sequence[Sequence[Any]]) -> None:
        """The metric's rows, newest first, are `expectedResults`:
        [["YYYY-mm-dd HH:MM:SS", value, anomaly_score, rowid], ...]."""
        with self._engine().begin() as conn:
            rows = repository.getMetricData(
                conn, metricId=uid, sort=schema.metric_data.c.timestamp.desc()).fetchall()
        self.assertEqual(len(rows), len(expectedResults))
        for row, expected in zip(rows, expectedResults, strict=True):
            self.assertSequenceEqual([row.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                                      row.metric_value, row.anomaly_score, row.rowid],
                                     expected)

    @retry(duration=600, delay=5)
    def getModelResults(self, uid: str, resultCount: int) -> list[Any]:
        """The `resultCount` scored rows (timestamp, metric_value, anomaly_score, rowid) of
        the metric, newest first, once they are all there."""
        fields = (schema.metric_data.c.timestamp, schema.metric_data.c.metric_value,
                  schema.metric_data.c.anomaly_score, schema.metric_data.c.rowid)
        with self._engine().begin() as conn:
            rows = repository.getMetricData(
                conn, metricId=uid, fields=fields, sort=schema.metric_data.c.timestamp.desc(),
                score=0.0).fetchall()
        self.assertEqual(len(rows), resultCount)
        return list(rows)

    @retry()
    def checkModelResultsDeleted(self, uid: str) -> None:
        """Every row of the metric has its scores cleared."""
        with self._engine().begin() as conn:
            rows = repository.getMetricData(
                conn, metricId=uid, sort=schema.metric_data.c.timestamp.desc()).fetchall()
        for row in rows:
            self.assertIsNone(row.raw_anomaly_score)
            self.assertIsNone(row.anomaly_score)
            self.assertIsNone(row.display_value)
            self.assertIsNone(row.multi_step_best_predictions)

    @retry(duration=25)
    def checkMetricDeleted(self, uid: str) -> None:
        """getMetric(uid) fails, no model lists it, and no checkpoint is left."""
        with self._engine().begin() as conn:
            with self.assertRaises(app_exceptions.ObjectNotFoundError):
                repository.getMetric(conn, uid)
            for model in repository.getAllModels(conn):
                self.assertNotEqual(model.uid, uid, "Model showing up after deletion.")
        self._assertNoCheckpoint(uid)

    def gracefullyCloseSocket(self, sock: socket.socket) -> None:
        """Half-close `sock`, expect the peer to close without answering, close it."""
        try:
            sock.shutdown(socket.SHUT_WR)
            response = sock.recv(4096)
            self.assertEqual(len(response), 0, f"Unexpected TCP response: {response!r}")
            sock.close()
        except OSError:
            pass
