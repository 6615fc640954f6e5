"""Request and response bodies of the HTTP API (pydantic models; they make the OpenAPI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _as_utc(value: datetime) -> datetime:
    """The engine stores naive UTC; answers carry the zone (RFC 3339, e.g. ...T08:08:20Z)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


class ErrorBody(BaseModel):
    """Every error answer: a message naming the bad input, and the status code."""

    error: str
    status: int


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": description}
    for code, description in ((404, "unknown metric"), (413, "request body too large"),
                              (422, "bad parameters or body"),
                              (503, "MySQL or RabbitMQ unavailable"))}


class ModelRange(BaseModel):
    """The encoder range of a metric's model (None while unknown)."""

    min: float | None = None
    max: float | None = None
    minResolution: float | None = None


class Metric(BaseModel):
    """One metric and its model."""

    uid: str
    name: str
    status: str = Field(description="UNMONITORED, ACTIVE, CREATE_PENDING, ERROR, PENDING_DATA")
    statusCode: int
    rowsStored: int
    rowsScored: int
    lastTimestamp: UtcDatetime | None = Field(None, description="UTC time of the newest sample")
    lastValue: float | None = None
    lastAnomalyLikelihood: float | None = None
    modelRange: ModelRange | None = None
    message: str | None = Field(None, description="the model's error message, if any")


class MetricDetail(Metric):
    """One metric with a sentence saying what its model is doing."""

    reason: str
    rowsWaiting: int = Field(description="rows stored but not scored yet")
    inputQueueDepth: int | None = Field(None, description="batches waiting in the model's "
                                        "input queue (None: no queue)")


class MetricPage(BaseModel):
    """A page of metrics."""

    total: int
    offset: int
    limit: int
    metrics: list[Metric]


class ModelRequest(BaseModel):
    """Optional model parameters of ``PUT .../model``."""

    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None
    minResolution: float | None = Field(None, gt=0)


class ModelAnswer(BaseModel):
    """What ``PUT`` / ``DELETE .../model`` did."""

    uid: str
    name: str
    status: str
    created: bool = Field(description="true if this request started the model")
    reason: str


class Deleted(BaseModel):
    """What ``DELETE /api/v1/metrics/{name}`` removed."""

    uid: str
    name: str
    deleted: bool = True


class Sample(BaseModel):
    """One sample: timestamp as epoch seconds or ISO 8601 (UTC unless it has an offset;
    fractions of a second are dropped), value a number."""

    model_config = ConfigDict(extra="forbid")

    timestamp: float | str
    value: float | str


class SampleVerdict(BaseModel):
    """Whether one sample was stored, and why not."""

    index: int
    timestamp: UtcDatetime | None
    accepted: bool
    rowid: int | None = None
    reason: str | None = None


class SamplesAnswer(BaseModel):
    """Per-sample answer of ``POST .../data``."""

    uid: str
    name: str
    accepted: int
    rejected: int
    samples: list[SampleVerdict]


class DataRow(BaseModel):
    """One stored row and its scores."""

    rowid: int
    timestamp: UtcDatetime
    value: float
    rawAnomalyScore: float | None
    anomalyLikelihood: float | None
    displayValue: int | None


class DataPage(BaseModel):
    """Rows of one metric in time order."""

    uid: str
    name: str
    rows: list[DataRow]


class Anomaly(BaseModel):
    """A row whose likelihood is over the threshold."""

    uid: str
    name: str
    rowid: int
    timestamp: UtcDatetime
    value: float
    rawAnomalyScore: float | None
    anomalyLikelihood: float


class AnomalyPage(BaseModel):
    """Recent anomalies across metrics, newest first."""

    threshold: float
    anomalies: list[Anomaly]


class ServiceHealth(BaseModel):
    """A service's liveness from its heartbeat."""

    alive: bool
    heartbeatAgeSeconds: float | None


class Health(BaseModel):
    """Health of the engine; ``healthy`` false means a 503."""

    healthy: bool
    problems: list[str]
    mysql: bool
    rabbitmq: bool
    services: dict[str, ServiceHealth]
    queues: dict[str, int | None]
