"""Errors of the influxhtm package, rooted in htmengine's exception tree."""

from __future__ import annotations

from htmengine.exceptions import (
    HTMEngineError,
    InvalidInputError,
    ObjectAlreadyExistsBase,
    ObjectNotFoundError,
)


class InfluxHtmError(HTMEngineError):
    """Base of every error raised by influxhtm."""


class InfluxConnectionError(InfluxHtmError):
    """The InfluxDB server could not be reached (the message names host and port)."""


class FollowerTimeoutError(InfluxHtmError, TimeoutError):
    """A model follower did not stop within the time it was given."""


class ColumnNotFoundError(InfluxHtmError, KeyError):
    """Combined data has no column of the requested name (the message lists its columns)."""


class InfluxQueryError(InfluxHtmError):
    """InfluxDB rejected a query or a write (the message quotes the statement or the error)."""


class InfluxHtmInputError(InfluxHtmError, InvalidInputError):
    """An argument (time, value, limit, aggregation, parameter...) is invalid; the message
    names it."""


class InvalidNameError(InfluxHtmInputError):
    """A measurement, component, model id or identifier cannot be stored or quoted (the
    message names it)."""


class SensorNotFoundError(InfluxHtmError, ObjectNotFoundError):
    """No data exists for the requested measurement and component."""


class HtmModelNotFoundError(InfluxHtmError, ObjectNotFoundError):
    """No HTM model with the requested id exists for the sensor."""


class HtmModelAlreadyExistsError(InfluxHtmError, ObjectAlreadyExistsBase):
    """An HTM model with the requested id already exists for the sensor."""
