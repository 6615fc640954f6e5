"""Exception tree of htmengine (names as in the original engine)."""


class HTMEngineError(Exception):
    """Base of every error raised by htmengine."""


class ApplicationNotConfiguredError(HTMEngineError, KeyError):
    """APPLICATION_CONFIG_PATH is not set in the environment."""


class ObjectNotFoundError(HTMEngineError):
    """A requested object (metric, row, model) does not exist."""


class ObjectAlreadyExistsBase(HTMEngineError):
    """Base for create failures because the object exists; `uid` names the existing object."""

    def __init__(self, message: str, uid: str | None = None) -> None:
        super().__init__(message)
        self.uid = uid


class MetricAlreadyExists(ObjectAlreadyExistsBase):
    """A metric with the same name already exists; `uid` is its uid."""


class MetricAlreadyMonitored(ObjectAlreadyExistsBase):
    """The metric is already monitored; `uid` is its uid."""


class MetricNotActiveError(HTMEngineError):
    """The operation needs a metric in status ACTIVE. Kept for the original's name: this
    engine's operations raise MetricStatusChangedError (or MetricNotMonitoredError) instead."""


class MetricStatisticsNotReadyError(HTMEngineError):
    """Metric statistics cannot be computed yet (too few samples)."""


class MetricStatusChangedError(HTMEngineError):
    """The metric's status was changed by someone else (another process)."""


class MetricNotMonitoredError(MetricStatusChangedError):
    """The operation needs a monitored metric and this one is UNMONITORED (raised by
    CustomDatasourceAdapter.activateModel)."""


class RejectedInferenceResultBatch(HTMEngineError):
    """An inference result batch does not match the stored rows (logged and dropped by the
    anomaly service)."""


class RetryableDeliveryError(HTMEngineError):
    """An alert receiver timed out, could not be reached, or answered 5xx (retried)."""


class DuplicateRecordError(HTMEngineError):
    """Adding a record failed because of an existing duplicate record."""


class InvalidInputError(HTMEngineError, ValueError):
    """Input (a sample line, a model spec, a value) is malformed; the message names it."""


class InvalidArgumentTypeError(InvalidInputError, TypeError):
    """An argument has the wrong type (a programming error); the message names it."""
