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


class MetricNotMonitoredError(HTMEngineError):
    """The metric is not monitored."""


class MetricNotActiveError(HTMEngineError):
    """The operation needs a metric in status ACTIVE."""


class MetricStatisticsNotReadyError(HTMEngineError):
    """Metric statistics cannot be computed yet (too few samples)."""


class MetricStatusChangedError(HTMEngineError):
    """The metric's status was changed by someone else (another process)."""


class DuplicateRecordError(HTMEngineError):
    """Adding a record failed because of an existing duplicate record."""


class InvalidInputError(HTMEngineError, ValueError):
    """Input (a sample line, a model spec, a value) is malformed; the message names it."""
