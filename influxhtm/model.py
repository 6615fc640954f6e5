"""HtmSensorModel: the HTM results of one model on one sensor, stored next to its input.

Results go to measurement `<sensor measurement>_model` with tags `component` (the sensor's)
and `htm_model_id`, at the same timestamps as the input points, with float fields
`anomalyScore` (raw), `anomalyLikelihood` and, when present, `prediction`. The model's
parameters are recorded as JSON in measurement `htm_models` (tags `sensor_measurement`,
`sensor_component`, `sensor_retention_policy`, `htm_model_id`; the latest point wins), so
that several parameter sets can be compared on the same sensor.
"""

from __future__ import annotations

import json
import math
import numbers
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from influxhtm.aggregation import AggregationSpec
from influxhtm.combined import RESULT_COLUMNS
from influxhtm.errors import HtmModelAlreadyExistsError, InfluxHtmInputError
from influxhtm.influxql import TimeLike, checkName, quoteIdent, toEpochMicros
from influxhtm.queries import SeriesRef, selectPoints
from influxhtm.runner import Follower, ModelRunner
from influxhtm.sensor_ref import SensorRef
from influxhtm.transport import (
    COMPONENT_TAG,
    MODEL_ID_TAG,
    MODEL_REGISTRY_MEASUREMENT,
    RESULTS_SUFFIX,
    RETENTION_POLICY_TAG,
)

PARAMS_FIELD = "params"


@dataclass(frozen=True)
class HtmModelResult:
    """One stored result: raw anomaly score, anomaly likelihood and optional prediction."""

    time: datetime
    anomalyScore: float | None
    anomalyLikelihood: float | None
    prediction: float | None = None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InfluxHtmInputError(f"{what} {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise InfluxHtmInputError(f"{what} {value!r} is not finite")
    return number


def resultFields(result: Mapping[str, Any]) -> dict[str, float]:
    """Fields to store for one result: either {"anomalyScore", "anomalyLikelihood"?,
    "prediction"?} or an OPF-shaped {"inferences": {"anomalyScore", "multiStepBestPredictions"?},
    "anomalyLikelihood"?}."""
    if not isinstance(result, Mapping):
        raise InfluxHtmInputError(f"an HTM result must be a dict, got {result!r}")
    inferences = result.get("inferences")
    if isinstance(inferences, Mapping):
        score = inferences.get("anomalyScore")
        predictions = inferences.get("multiStepBestPredictions") or {}
        prediction = next(iter(predictions.values()), None) if predictions else None
    else:
        score = result.get("anomalyScore")
        prediction = result.get("prediction")
    if score is None:
        raise InfluxHtmInputError(f"HTM result {dict(result)!r} has no anomalyScore")
    fields = {"anomalyScore": _number(score, "anomalyScore")}
    if result.get("anomalyLikelihood") is not None:
        fields["anomalyLikelihood"] = _number(result["anomalyLikelihood"], "anomalyLikelihood")
    if prediction is not None:
        fields["prediction"] = _number(prediction, "prediction")
    return fields


def _resultTime(result: Mapping[str, Any]) -> Any:
    for key in ("time", "timestamp"):
        if result.get(key) is not None:
            return result[key]
    rawInput = result.get("rawInput")
    if isinstance(rawInput, Mapping) and rawInput.get("timestamp") is not None:
        return rawInput["timestamp"]
    raise InfluxHtmInputError(f"HTM result {dict(result)!r} has no 'time' (or 'timestamp')")


class HtmSensorModel:
    """Results of the HTM model `id` on a sensor, and the means to produce them with
    htmengine's HtmAnomalyModel (`process`, `follow`)."""

    def __init__(self, sensor: SensorRef, id: str) -> None:
        self._sensor = sensor
        self._id = checkName("HTM model id", id)
        self._runner: ModelRunner | None = None
        self._runnerLock = threading.Lock()

    # ----------------------------------------------------------------------- registry

    @classmethod
    def create(cls, sensor: SensorRef, id: str,
               params: Mapping[str, Any] | None = None) -> HtmSensorModel:
        """Register model `id` on `sensor` with `params` (HtmModelAlreadyExistsError if
        taken)."""
        model = cls(sensor, id)
        if any(existing.getId() == model.getId() for existing in cls.listFor(sensor)):
            raise HtmModelAlreadyExistsError(
                f"sensor {sensor.getName()!r} already has an HTM model {id!r}", uid=id)
        model.setParams(dict(params or {}))
        return model

    @staticmethod
    def _registryTags(sensor: SensorRef) -> dict[str, str]:
        return {"sensor_measurement": sensor.getMeasurement(),
                "sensor_component": sensor.getComponent(),
                RETENTION_POLICY_TAG: sensor.getRetentionPolicy() or ""}

    @classmethod
    def listFor(cls, sensor: SensorRef) -> list[HtmSensorModel]:
        """Models registered for `sensor` or having results on it, sorted by id."""
        ids: set[str] = set()
        for series in (cls.registryRef(sensor, None), cls.resultsRef(sensor, None)):
            statement = (f"SHOW TAG VALUES FROM {quoteIdent(series.measurement)} WITH KEY = "
                         f"{quoteIdent(MODEL_ID_TAG)} WHERE "
                         f"{' AND '.join(series.tagConditions())}")
            for result in sensor.getClient().query(statement):
                valueAt = result["columns"].index("value")
                ids.update(row[valueAt] for row in result.get("values") or [])
        return [cls(sensor, modelId) for modelId in sorted(ids)]

    @classmethod
    def registryRef(cls, sensor: SensorRef, modelId: str | None) -> SeriesRef:
        """The registry series of `modelId` on `sensor` (all its models when None)."""
        tags = cls._registryTags(sensor)
        if modelId is not None:
            tags[MODEL_ID_TAG] = modelId
        return SeriesRef(sensor.getClient(), MODEL_REGISTRY_MEASUREMENT, tags)

    @staticmethod
    def resultsRef(sensor: SensorRef, modelId: str | None) -> SeriesRef:
        """The results series of `modelId` on `sensor` (all models when None)."""
        tags = {COMPONENT_TAG: sensor.getComponent(),
                RETENTION_POLICY_TAG: sensor.getRetentionPolicy() or ""}
        if modelId is not None:
            tags[MODEL_ID_TAG] = modelId
        return SeriesRef(sensor.getClient(), sensor.getMeasurement() + RESULTS_SUFFIX, tags,
                         sensor.getRetentionPolicy())

    def getParams(self) -> dict[str, Any]:
        """The parameters recorded for this model ({} if none)."""
        rows = selectPoints(self.registryRef(self._sensor, self._id), [PARAMS_FIELD],
                            limit=1)  # the latest record
        if not rows or rows[-1].get(PARAMS_FIELD) is None:
            return {}
        params: dict[str, Any] = json.loads(rows[-1][PARAMS_FIELD])
        return params

    def setParams(self, params: Mapping[str, Any]) -> None:
        """Record `params` (JSON-serializable) for this model, replacing earlier ones."""
        try:
            text = json.dumps(dict(params), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InfluxHtmInputError(f"HTM model params {params!r} are not JSON: {exc}") from None
        tags = {k: v for k, v in self._registryTags(self._sensor).items() if v}
        self._sensor.getClient().writePoints([{
            "measurement": MODEL_REGISTRY_MEASUREMENT,
            "tags": {**tags, MODEL_ID_TAG: self._id},
            # Recorded now (not at a fixed old time) so that a finite default retention
            # policy accepts it; the latest record wins.
            "time": toEpochMicros(datetime.now(UTC)),
            "fields": {PARAMS_FIELD: text},
        }])

    # ----------------------------------------------------------------------- identity

    def getId(self) -> str:
        """The model id (chosen by the caller, e.g. a GUID or a URL of the HTM model)."""
        return self._id

    def getSensor(self) -> SensorRef:
        """The sensor whose data this model scores."""
        return self._sensor

    def getMeasurement(self) -> str:
        """The measurement holding the results."""
        return self._sensor.getMeasurement() + RESULTS_SUFFIX

    def getComponent(self) -> str:
        """The sensor's component (also a tag of every result)."""
        return self._sensor.getComponent()

    def getTags(self) -> dict[str, str]:
        """Tags written with every result."""
        tags = {COMPONENT_TAG: self.getComponent(), MODEL_ID_TAG: self._id}
        policy = self._sensor.getRetentionPolicy()
        if policy:
            tags[RETENTION_POLICY_TAG] = policy
        return tags

    def getName(self) -> str:
        """"<component> <measurement> HTM Model <id>"."""
        return f"{self._sensor.getName()} HTM Model {self._id}"

    def __str__(self) -> str:
        return self.getName()

    def __repr__(self) -> str:
        return f"HtmSensorModel({self._sensor!r}, {self._id!r})"

    # ----------------------------------------------------------------------- results

    def writeResult(self, time: TimeLike, result: Mapping[str, Any]) -> None:
        """Store one result at `time` (the time of the input point it scores)."""
        self.writeResults([(time, result)])

    def writeResults(self, timedResults: Iterable[tuple[TimeLike, Mapping[str, Any]]]) -> int:
        """Store many (time, result) pairs in one request; returns the count."""
        payload = [{
            "measurement": self.getMeasurement(),
            "tags": self.getTags(),
            "time": toEpochMicros(time, "result time"),
            "fields": resultFields(result),
        } for time, result in timedResults]
        self._sensor.getClient().writePoints(
            payload, retentionPolicy=self._sensor.getRetentionPolicy())
        return len(payload)

    def write(self, results: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> int:
        """Store one result or a list, each carrying its own "time" (or "timestamp")."""
        items = [results] if isinstance(results, Mapping) else list(results)
        return self.writeResults((_resultTime(item), item) for item in items)

    def getResultRows(self, since: TimeLike | None = None, until: TimeLike | None = None,
                      limit: int | None = None,
                      aggregation: AggregationSpec = None) -> list[dict[str, Any]]:
        """Results as dicts (time + result columns), same interface as Sensor.getData."""
        return selectPoints(self.resultsRef(self._sensor, self._id), list(RESULT_COLUMNS),
                            since=since, until=until, limit=limit, aggregation=aggregation,
                            boundsField="anomalyScore")

    def getResults(self, since: TimeLike | None = None, until: TimeLike | None = None,
                   limit: int | None = None,
                   aggregation: AggregationSpec = None) -> list[HtmModelResult]:
        """Results as HtmModelResult objects in ascending time; arguments as Sensor.getData
        (with an aggregation, each column is aggregated with the same method)."""
        return [HtmModelResult(row["time"], row.get("anomalyScore"),
                               row.get("anomalyLikelihood"), row.get("prediction"))
                for row in self.getResultRows(since, until, limit, aggregation)]

    getModelResults = getResults

    def delete(self) -> None:
        """Remove this model's results and registration; other models are untouched."""
        client = self._sensor.getClient()
        resultsWhere = " AND ".join(self.resultsRef(self._sensor, self._id).tagConditions())
        client.query(f"DROP SERIES FROM {quoteIdent(self.getMeasurement())} "
                     f"WHERE {resultsWhere}", write=True)
        registryWhere = " AND ".join(self.registryRef(self._sensor, self._id).tagConditions())
        client.query(f"DROP SERIES FROM {quoteIdent(MODEL_REGISTRY_MEASUREMENT)} "
                     f"WHERE {registryWhere}", write=True)
        with self._runnerLock:
            self._runner = None

    # ----------------------------------------------------------------------- running

    def getRunner(self) -> ModelRunner:
        """The in-memory HTM model run by process/follow (created on first use)."""
        with self._runnerLock:
            if self._runner is None:
                self._runner = ModelRunner(self)
            return self._runner

    def process(self, since: TimeLike | None = None, until: TimeLike | None = None,
                aggregation: AggregationSpec = None) -> int:
        """Run the HTM model over the sensor's points in [since, until] (optionally
        aggregated) and store the results; returns how many points were scored. The model
        moves forward only: points at or before the last scored one are skipped. The HTM
        model lives in this object's memory; another HtmSensorModel object for the same id
        starts afresh (and, the model being deterministic, re-scoring from the same first
        point rewrites the same results)."""
        return self.getRunner().process(since=since, until=until, aggregation=aggregation)

    def follow(self, pollInterval: float = 1.0, stopEvent: threading.Event | None = None,
               idleTimeout: float | None = None, maxPoints: int | None = None) -> int:
        """Score points as they are written, polling every `pollInterval` seconds, until
        `stopEvent` is set, `idleTimeout` seconds pass without new points or `maxPoints` were
        scored; returns how many were scored."""
        return self.getRunner().follow(pollInterval=pollInterval, stopEvent=stopEvent,
                                       idleTimeout=idleTimeout, maxPoints=maxPoints)

    def startFollowing(self, pollInterval: float = 1.0) -> Follower:
        """`follow` in a background thread; stop it with `Follower.stop()`."""
        return Follower(self, pollInterval=pollInterval)
