"""influxhtm: keep sensor streams in InfluxDB 1.x, run HTM models on them, store the results
linked to the input and read both back together for plotting."""

from influxhtm.aggregation import Aggregation, parseAggregation
from influxhtm.client import InfluxHtmClient
from influxhtm.combined import CombinedData
from influxhtm.errors import (
    HtmModelAlreadyExistsError,
    HtmModelNotFoundError,
    InfluxConnectionError,
    InfluxHtmError,
    InfluxHtmInputError,
    InfluxQueryError,
    InvalidNameError,
    SensorNotFoundError,
)
from influxhtm.model import HtmModelResult, HtmSensorModel
from influxhtm.plotting import plotCombinedData
from influxhtm.sensor import Sensor

__all__ = [
    "Aggregation",
    "CombinedData",
    "HtmModelAlreadyExistsError",
    "HtmModelNotFoundError",
    "HtmModelResult",
    "HtmSensorModel",
    "InfluxConnectionError",
    "InfluxHtmClient",
    "InfluxHtmError",
    "InfluxHtmInputError",
    "InfluxQueryError",
    "InvalidNameError",
    "Sensor",
    "SensorNotFoundError",
    "parseAggregation",
    "plotCombinedData",
]
