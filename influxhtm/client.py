"""InfluxHtmClient: the gateway to sensors and HTM model results kept in InfluxDB 1.x."""

from __future__ import annotations

from influxhtm.errors import InfluxHtmInputError, SensorNotFoundError
from influxhtm.influxql import quoteIdent, quoteLiteral
from influxhtm.sensor import Sensor
from influxhtm.transport import COMPONENT_TAG, MODEL_ID_TAG, InfluxTransport


class InfluxHtmClient(InfluxTransport):
    """Connection to one InfluxDB 1.x database holding sensors and HTM results: the
    transport (`InfluxTransport`: arguments, environment, queries, writes) plus the sensors.
    """

    def createSensor(self, measurement: str | None = None,
                     component: str | None = None) -> Sensor:
        """A Sensor for `measurement` + `component`; nothing is written until Sensor.write."""
        if measurement is None or component is None:
            raise InfluxHtmInputError("createSensor needs both measurement and component, got "
                                   f"measurement={measurement!r}, component={component!r}")
        return Sensor(self, measurement, component)

    def listSensors(self) -> list[Sensor]:
        """Every sensor with data: series with a `component` tag that are not HTM results,
        sorted by measurement then component."""
        statement = (f"SHOW TAG VALUES WITH KEY = {quoteIdent(COMPONENT_TAG)} "
                     f"WHERE {quoteIdent(MODEL_ID_TAG)} = ''")
        sensors = []
        for series in self.query(statement):
            valueAt = series["columns"].index("value")
            for row in series.get("values", []):
                sensors.append(Sensor(self, series["name"], row[valueAt]))
        return sorted(sensors, key=lambda s: (s.getMeasurement(), s.getComponent()))

    getSensors = listSensors

    def getSensor(self, measurement: str | None = None,
                  component: str | None = None) -> Sensor:
        """The sensor with this measurement and component; SensorNotFoundError if it has no
        data."""
        wanted = self.createSensor(measurement, component)
        statement = (f"SHOW TAG VALUES FROM {quoteIdent(wanted.getMeasurement())} "
                     f"WITH KEY = {quoteIdent(COMPONENT_TAG)} "
                     f"WHERE {quoteIdent(COMPONENT_TAG)} = {quoteLiteral(wanted.getComponent())} "
                     f"AND {quoteIdent(MODEL_ID_TAG)} = ''")
        for series in self.query(statement):
            if series.get("name") == wanted.getMeasurement() and series.get("values"):
                return Sensor(self, wanted.getMeasurement(), wanted.getComponent())
        raise SensorNotFoundError(f"no sensor with measurement {measurement!r} and component "
                                  f"{component!r} in database {self._database!r}")
