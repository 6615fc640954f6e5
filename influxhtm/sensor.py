"""Sensor: one measurement + `component` tag, its data, its HTM models and merged results."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from influxhtm.aggregation import AggregationSpec, parseAggregation
from influxhtm.combined import CombinedData, mergeOnTime
from influxhtm.errors import HtmModelNotFoundError, InfluxHtmInputError
from influxhtm.influxql import TimeLike, fromEpochMicros, toEpochMicros
from influxhtm.model import HtmSensorModel
from influxhtm.plotting import plotCombinedData
from influxhtm.queries import selectPoints, timeBounds
from influxhtm.retention import createAggregatedCopies
from influxhtm.sensor_ref import SensorRef
from influxhtm.transport import VALUE_FIELD

__all__ = ["VALUE_FIELD", "Sensor"]


def _pointValue(point: Mapping[str, Any], index: int) -> float:
    if "value" not in point:
        raise InfluxHtmInputError(f"point {index} {dict(point)!r} has no 'value'")
    value = point["value"]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InfluxHtmInputError(f"point {index}: value {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise InfluxHtmInputError(f"point {index}: value {value!r} is not finite")
    return number


class Sensor(SensorRef):
    """A stream of scalar `value`s: one measurement with one `component` tag value.

    Optionally bound to a retention policy (the aggregated copies made by
    `createAggregatedCopies` are Sensors bound to theirs)."""

    # ----------------------------------------------------------------------- data

    def write(self, data: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> int:
        """Write one point or a list of points, each {"time": datetime (naive = UTC) or epoch
        seconds, "value": number}; a point at an existing time replaces it. Returns the count."""
        points = [data] if isinstance(data, Mapping) else list(data)
        payload = []
        for index, point in enumerate(points):
            if not isinstance(point, Mapping) or "time" not in point:
                raise InfluxHtmInputError(f"point {index} {point!r} needs a 'time' and a 'value'")
            payload.append({
                "measurement": self._measurement,
                "tags": self.getTags(),
                "time": toEpochMicros(point["time"], f"point {index} time"),
                "fields": {VALUE_FIELD: _pointValue(point, index)},
            })
        self._client.writePoints(payload, retentionPolicy=self._retentionPolicy)
        return len(payload)

    def getData(self, since: TimeLike | None = None, until: TimeLike | None = None,
                limit: int | None = None,
                aggregation: AggregationSpec = None) -> list[dict[str, Any]]:
        """Points as [{"time": aware UTC datetime, "value": float}] in ascending time.

        `since`/`until` are inclusive. With `limit`, the first points from `since` when it is
        given, otherwise the last points up to `until` (or the latest). `aggregation` is a
        period ("10m", mean) or {"method": "max", "period": "10m"}; rows are buckets."""
        return selectPoints(self.seriesRef(), [VALUE_FIELD], since=since, until=until,
                            limit=limit, aggregation=aggregation)

    def getTimeBounds(self) -> tuple[datetime | None, datetime | None]:
        """Times of the first and last points ((None, None) without data)."""
        first, last = timeBounds(self.seriesRef(), VALUE_FIELD)
        return (fromEpochMicros(first) if first is not None else None,
                fromEpochMicros(last) if last is not None else None)

    def getEarliestTimestamp(self) -> datetime | None:
        """Time of the first point (None without data)."""
        return self.getTimeBounds()[0]

    # ----------------------------------------------------------------------- HTM models

    def createHtmModel(self, id: str, params: Mapping[str, Any] | None = None) -> HtmSensorModel:
        """Register a new HTM model for this sensor (HtmModelAlreadyExistsError if `id` is
        taken). `params` are recorded with the model; see HtmSensorModel."""
        return HtmSensorModel.create(self, id, params)

    def listHtmModels(self) -> list[HtmSensorModel]:
        """Every HTM model registered for, or with results on, this sensor (sorted by id)."""
        return HtmSensorModel.listFor(self)

    def getHtmModel(self, id: str | None = None) -> HtmSensorModel:
        """The HTM model `id` of this sensor; without an id, the sensor's only model.
        HtmModelNotFoundError if there is none (or, without an id, several)."""
        models = self.listHtmModels()
        if id is None:
            if len(models) == 1:
                return models[0]
            raise HtmModelNotFoundError(
                f"sensor {self.getName()!r} has {len(models)} HTM models "
                f"({[m.getId() for m in models]}); name one with getHtmModel(id)")
        for model in models:
            if model.getId() == id:
                return model
        raise HtmModelNotFoundError(f"sensor {self.getName()!r} has no HTM model {id!r}")

    getModel = getHtmModel

    def _modelToCombine(self, modelId: str | None) -> HtmSensorModel | None:
        if modelId is not None:
            return self.getHtmModel(modelId)
        models = self.listHtmModels()
        if len(models) > 1:
            raise HtmModelNotFoundError(
                f"sensor {self.getName()!r} has several HTM models "
                f"({[m.getId() for m in models]}); pass modelId")
        return models[0] if models else None

    def getCombinedSensorData(self, since: TimeLike | None = None,
                              until: TimeLike | None = None,
                              aggregation: AggregationSpec = None, limit: int | None = None,
                              modelId: str | None = None) -> CombinedData:
        """Input values and HTM results merged on time (columns time, value, anomalyScore,
        anomalyLikelihood, prediction), ready to plot. Results are those of `modelId`, or of
        the sensor's only model; columns stay None where a row has no result."""
        sensorRows = self.getData(since=since, until=until, limit=limit,
                                  aggregation=aggregation)
        model = self._modelToCombine(modelId)
        resultRows: list[dict[str, Any]] = []
        if model is not None and sensorRows:
            # Results over exactly the input points behind the sensor rows.
            lower = toEpochMicros(sensorRows[0]["time"])
            upper = toEpochMicros(sensorRows[-1]["time"])
            agg = parseAggregation(aggregation)
            if agg is not None:
                upper += round(agg.seconds * 1_000_000) - 1
            if since is not None:
                lower = max(lower, toEpochMicros(since, "since"))
            if until is not None:
                upper = min(upper, toEpochMicros(until, "until"))
            resultRows = model.getResultRows(since=fromEpochMicros(lower),
                                             until=fromEpochMicros(upper), aggregation=agg)
        return mergeOnTime(self.getName(), sensorRows, resultRows,
                           modelId=model.getId() if model is not None else None)

    # ----------------------------------------------------------------------- extras

    def createAggregatedCopies(self, periods: Iterable[str], method: str = "mean",
                               duration: str = "INF", backfill: bool = True) -> dict[str, Sensor]:
        """For each period, a retention policy `htm_<period>` (with `duration`) and a
        continuous query writing the `method` of each bucket there; existing data is copied
        at once when `backfill`. Returns {period: Sensor reading that copy}."""
        policies = createAggregatedCopies(self, periods, method=method, duration=duration,
                                          backfill=backfill)
        return {period: Sensor(self.getClient(), self.getMeasurement(), self.getComponent(),
                               retentionPolicy=policy)
                for period, policy in policies.items()}

    def plot(self, path: str | Path, since: TimeLike | None = None,
             until: TimeLike | None = None, aggregation: AggregationSpec = None,
             modelId: str | None = None) -> Path:
        """Write a PNG of value and anomaly likelihood (see plotting.plotCombinedData)."""
        data = self.getCombinedSensorData(since=since, until=until, aggregation=aggregation,
                                          modelId=modelId)
        return plotCombinedData(data, path)
