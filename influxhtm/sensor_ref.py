"""SensorRef: which series a sensor is (client, measurement, component, retention policy).

The identity the object model shares: `Sensor` adds data and models to it, and the HTM model,
its runner and the retention helpers need only this."""

from __future__ import annotations

from influxhtm.influxql import checkName
from influxhtm.queries import SeriesRef
from influxhtm.transport import COMPONENT_TAG, MODEL_ID_TAG, InfluxTransport


class SensorRef:
    """One measurement with one `component` tag value, optionally bound to a retention
    policy, read and written through `client`."""

    def __init__(self, client: InfluxTransport, measurement: str, component: str,
                 retentionPolicy: str | None = None) -> None:
        self._client = client
        self._measurement = checkName("measurement", measurement)
        self._component = checkName("component", component)
        self._retentionPolicy = retentionPolicy

    # ----------------------------------------------------------------------- identity

    def getClient(self) -> InfluxTransport:
        """The client this sensor reads and writes through."""
        return self._client

    def getMeasurement(self) -> str:
        """The InfluxDB measurement holding this sensor's values."""
        return self._measurement

    def getComponent(self) -> str:
        """The `component` tag value identifying this sensor within its measurement."""
        return self._component

    def getRetentionPolicy(self) -> str | None:
        """The retention policy read and written (None = the database default)."""
        return self._retentionPolicy

    def getTags(self) -> dict[str, str]:
        """Tags written with every point."""
        return {COMPONENT_TAG: self._component}

    def getName(self) -> str:
        """"<component> <measurement>", as in the seed project."""
        return f"{self._component} {self._measurement}"

    def __str__(self) -> str:
        return self.getName()

    def __repr__(self) -> str:
        policy = f", retentionPolicy={self._retentionPolicy!r}" if self._retentionPolicy else ""
        return f"{type(self).__name__}({self._measurement!r}, {self._component!r}{policy})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SensorRef) and other._client is self._client
                and (other._measurement, other._component, other._retentionPolicy)
                == (self._measurement, self._component, self._retentionPolicy))

    def __hash__(self) -> int:
        return hash((self._measurement, self._component, self._retentionPolicy))

    def seriesRef(self) -> SeriesRef:
        """This sensor's series (HTM result points excluded)."""
        return SeriesRef(self._client, self._measurement,
                         {COMPONENT_TAG: self._component, MODEL_ID_TAG: ""},
                         self._retentionPolicy)
