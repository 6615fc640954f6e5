"""Running htmengine's HTM model on a sensor: batch over a time slice, or live follow.

The model parameters (value range, likelihood settings, aggregation) are resolved on the first
run and recorded with the model (HtmSensorModel.setParams), so runs with different parameter
sets can be compared on the same sensor. Recognised keys:

- `minVal`, `maxVal`, `minResolution` (0.001): the value range of the standard scalar
  anomaly params; a missing range is taken from the sensor's data, widened by 20% of the
  range on each side (as NAB's detector and the engine's custom adapter do);
- `modelConfig`: a complete OPF modelConfig instead of the range;
- `likelihood`: AnomalyLikelihood arguments (learningPeriod 288, estimationSamples 100,
  historicWindowSize 8640, reestimationPeriod 100 unless given);
- `aggregation`: recorded by the first `process` call; later calls use it when they give
  none, and may not give another one.
"""

from __future__ import annotations

import threading
import time as clock
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from influxhtm.aggregation import Aggregation, AggregationSpec, parseAggregation
from influxhtm.errors import FollowerTimeoutError, InfluxHtmInputError
from influxhtm.influxql import TimeLike, fromEpochMicros, quoteIdent, toEpochMicros
from influxhtm.queries import selectPoints
from influxhtm.sensor_ref import SensorRef
from influxhtm.transport import VALUE_FIELD

if TYPE_CHECKING:
    from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
    from htmengine.algorithms.model import HtmAnomalyModel

PARAM_KEYS = frozenset({"minVal", "maxVal", "minResolution", "modelConfig", "likelihood",
                        "aggregation"})
DEFAULT_LIKELIHOOD = {"learningPeriod": 288, "estimationSamples": 100,
                      "historicWindowSize": 8640, "reestimationPeriod": 100}
DEFAULT_MIN_RESOLUTION = 0.001
RANGE_MARGIN = 0.2
PAGE_SIZE = 2000


class RunnableModel(Protocol):
    """What a runner needs of its HtmSensorModel (which builds runners, so the runner does not
    import it): the sensor, the recorded parameters and somewhere to write results."""

    def getSensor(self) -> SensorRef:
        """The sensor the model runs on."""
        ...

    def getId(self) -> str:
        """The model's id."""
        ...

    def getName(self) -> str:
        """The model's person-readable name."""
        ...

    def getParams(self) -> dict[str, Any]:
        """The recorded parameters."""
        ...

    def setParams(self, params: Mapping[str, Any]) -> None:
        """Record the parameters."""
        ...

    def writeResults(self, timedResults: Iterable[tuple[TimeLike, Mapping[str, Any]]]) -> int:
        """Store results at the input points' times."""
        ...

    def follow(self, pollInterval: float = 1.0, stopEvent: threading.Event | None = None,
               idleTimeout: float | None = None, maxPoints: int | None = None) -> int:
        """Score points as they are written (see HtmSensorModel.follow)."""
        ...


def _aggregationRecord(agg: Aggregation | None) -> dict[str, str] | None:
    return None if agg is None else {"method": agg.method, "period": agg.period}


class ModelRunner:
    """The in-memory HTM model and anomaly likelihood of one HtmSensorModel."""

    def __init__(self, model: RunnableModel) -> None:
        self._model = model
        self._htm: HtmAnomalyModel | None = None
        self._likelihood: AnomalyLikelihood | None = None
        self._aggregation: Aggregation | None = None
        self._lastMicros: int | None = None
        self._lock = threading.Lock()

    @property
    def lastTime(self) -> int | None:
        """Epoch microseconds of the last scored point (None before the first)."""
        return self._lastMicros

    # ----------------------------------------------------------------------- set-up

    def _valueRange(self) -> tuple[float, float]:
        series = self._model.getSensor().seriesRef()
        statement = (f"SELECT min({quoteIdent(VALUE_FIELD)}) AS lo, "
                     f"max({quoteIdent(VALUE_FIELD)}) AS hi FROM {series.fromClause()} "
                     f"WHERE {' AND '.join(series.tagConditions())}")
        for result in series.client.query(statement):
            for row in result.get("values") or []:
                columns = result["columns"]
                low, high = row[columns.index("lo")], row[columns.index("hi")]
                if low is not None and high is not None:
                    if high <= low:
                        high = low + 1.0
                    margin = RANGE_MARGIN * (high - low)
                    return float(low - margin), float(high + margin)
        raise InfluxHtmInputError(f"sensor {self._model.getSensor().getName()!r} has no data to "
                               f"take a value range from; pass minVal and maxVal")

    def _resolveParams(self, aggregation: Aggregation | None) -> dict[str, Any]:
        params = self._model.getParams()
        unknown = set(params) - PARAM_KEYS
        if unknown:
            raise InfluxHtmInputError(f"HTM model {self._model.getId()!r}: unknown params "
                                   f"{sorted(unknown)} (known: {sorted(PARAM_KEYS)})")
        resolved = dict(params)
        if "modelConfig" not in resolved:
            if ("minVal" in resolved) != ("maxVal" in resolved):
                raise InfluxHtmInputError(f"HTM model {self._model.getId()!r}: give both minVal "
                                       f"and maxVal or neither")
            if "minVal" not in resolved:
                resolved["minVal"], resolved["maxVal"] = self._valueRange()
            resolved.setdefault("minResolution", DEFAULT_MIN_RESOLUTION)
        resolved["likelihood"] = {**DEFAULT_LIKELIHOOD, **(resolved.get("likelihood") or {})}
        resolved["aggregation"] = _aggregationRecord(aggregation)
        if resolved != params:
            self._model.setParams(resolved)
        return resolved

    def _ensureModel(self, aggregation: AggregationSpec) -> Aggregation | None:
        """Build the model on first use; returns the aggregation it runs on (the one asked
        for, or when none is asked for, the one the model already runs or ran on)."""
        agg = parseAggregation(aggregation)
        if self._htm is not None:
            agg = self._aggregation if agg is None else agg
            if agg != self._aggregation:
                raise InfluxHtmInputError(
                    f"HTM model {self._model.getId()!r} runs on aggregation "
                    f"{_aggregationRecord(self._aggregation)}, not "
                    f"{_aggregationRecord(agg)}; create another model to compare")
            return agg
        from htmengine.algorithms.anomaly_likelihood import AnomalyLikelihood
        from htmengine.algorithms.model import HtmAnomalyModel

        recorded = parseAggregation(self._model.getParams().get("aggregation"))
        agg = recorded if agg is None else agg
        if recorded is not None and recorded != agg:
            raise InfluxHtmInputError(
                f"HTM model {self._model.getId()!r} was run on aggregation "
                f"{_aggregationRecord(recorded)}, not {_aggregationRecord(agg)}")
        params = self._resolveParams(agg)
        if "modelConfig" in params:
            self._htm = HtmAnomalyModel.create(params["modelConfig"])
        else:
            self._htm = HtmAnomalyModel.from_range(params["minVal"], params["maxVal"],
                                                   params["minResolution"])
        self._likelihood = AnomalyLikelihood(**params["likelihood"])
        self._aggregation = agg
        return agg

    # ----------------------------------------------------------------------- scoring

    def _score(self, rows: list[dict[str, Any]]) -> int:
        assert self._htm is not None and self._likelihood is not None
        results = []
        for row in rows:
            when: datetime = row["time"].replace(tzinfo=None)  # the model works in naive UTC
            value = row[VALUE_FIELD]
            raw = self._htm.run(when, value)
            likelihood = self._likelihood.anomalyProbability(value, raw, when)
            results.append((row["time"], {"anomalyScore": raw,
                                          "anomalyLikelihood": likelihood}))
        self._model.writeResults(results)
        if rows:
            self._lastMicros = toEpochMicros(rows[-1]["time"])
        return len(rows)

    def _scoreAvailable(self, since: TimeLike | None, until: TimeLike | None,
                        agg: Aggregation | None, maxPoints: int | None = None) -> int:
        sensor = self._model.getSensor()
        lower = toEpochMicros(since, "since") if since is not None else None
        scored = 0
        while maxPoints is None or scored < maxPoints:
            pageSize = PAGE_SIZE if maxPoints is None else min(PAGE_SIZE, maxPoints - scored)
            pageSince, after = lower, self._lastMicros
            if agg is not None and after is not None:
                # The bucket starting at `after` is done: go on from the next bucket.
                nextBucket = after + round(agg.seconds * 1_000_000)
                pageSince = nextBucket if lower is None else max(lower, nextBucket)
                after = None
            rows = selectPoints(sensor.seriesRef(), [VALUE_FIELD],
                                since=None if pageSince is None else fromEpochMicros(pageSince),
                                until=until, limit=pageSize, aggregation=agg,
                                afterMicros=after, oldestFirst=True)
            scored += self._score(rows)
            if len(rows) < pageSize:
                break
        return scored

    def process(self, since: TimeLike | None = None, until: TimeLike | None = None,
                aggregation: AggregationSpec = None) -> int:
        """Score the points in [since, until] after the last scored one; returns the count."""
        with self._lock:
            agg = self._ensureModel(aggregation)
            return self._scoreAvailable(since, until, agg)

    def follow(self, pollInterval: float = 1.0, stopEvent: threading.Event | None = None,
               idleTimeout: float | None = None, maxPoints: int | None = None) -> int:
        """Score new raw points as they arrive until stopped (see HtmSensorModel.follow)."""
        if pollInterval <= 0:
            raise InfluxHtmInputError(f"pollInterval must be positive, got {pollInterval!r}")
        stopEvent = stopEvent or threading.Event()
        scored = 0
        lastActivity = clock.monotonic()
        while not stopEvent.is_set():
            with self._lock:
                agg = self._ensureModel(None)
                if agg is not None:
                    raise InfluxHtmInputError(
                        f"HTM model {self._model.getId()!r} runs on aggregation "
                        f"{_aggregationRecord(agg)}; follow scores raw points only (a live "
                        f"bucket is incomplete): call process() periodically instead")
                remaining = None if maxPoints is None else maxPoints - scored
                count = self._scoreAvailable(None, None, agg, maxPoints=remaining)
            scored += count
            if maxPoints is not None and scored >= maxPoints:
                break
            if count:
                lastActivity = clock.monotonic()
            elif idleTimeout is not None and clock.monotonic() - lastActivity >= idleTimeout:
                break
            stopEvent.wait(pollInterval)
        return scored


class Follower:
    """A background thread running HtmSensorModel.follow until `stop()`."""

    def __init__(self, model: RunnableModel, pollInterval: float = 1.0) -> None:
        self._model = model
        self._stopEvent = threading.Event()
        self.processed = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(pollInterval,),
                                        name=f"influxhtm-follow-{model.getId()}", daemon=True)
        self._thread.start()

    def _run(self, pollInterval: float) -> None:
        try:
            self.processed = self._model.follow(pollInterval=pollInterval,
                                                stopEvent=self._stopEvent)
        except BaseException as exc:  # reported to the owner through .error / stop()
            self.error = exc

    def isRunning(self) -> bool:
        """True while the follow loop runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> int:
        """Stop following, wait for the thread, re-raise its error; returns points scored."""
        self._stopEvent.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise FollowerTimeoutError(f"follower of {self._model.getName()!r} did not stop within "
                               f"{timeout} s")
        if self.error is not None:
            raise self.error
        return self.processed
