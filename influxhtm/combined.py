"""CombinedData: sensor values and HTM results merged on time, in columns ready to plot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from influxhtm.errors import ColumnNotFoundError

RESULT_COLUMNS = ("anomalyScore", "anomalyLikelihood", "prediction")
COLUMNS = ("time", "value", *RESULT_COLUMNS)


@dataclass
class CombinedData:
    """Rows of (time, value, anomalyScore, anomalyLikelihood, prediction) in ascending time.

    `name` is the sensor's name and `modelId` the model whose results were merged (None if the
    sensor has no model). Missing values are None."""

    name: str
    modelId: str | None
    columns: tuple[str, ...] = COLUMNS
    rows: list[list[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            yield dict(zip(self.columns, row, strict=True))

    def column(self, name: str) -> list[Any]:
        """All values of one column, in row order."""
        try:
            index = self.columns.index(name)
        except ValueError:
            raise ColumnNotFoundError(f"no column {name!r}; columns are {list(self.columns)}") from None
        return [row[index] for row in self.rows]

    def times(self) -> list[datetime]:
        """The time column."""
        return self.column("time")

    def toDicts(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return list(self)


def mergeOnTime(name: str, sensorRows: Sequence[dict[str, Any]],
                resultRows: Sequence[dict[str, Any]], modelId: str | None) -> CombinedData:
    """Outer-join sensor rows (time, value) and result rows (time + RESULT_COLUMNS) on time."""
    merged: dict[datetime, list[Any]] = {}
    for row in sensorRows:
        merged[row["time"]] = [row["time"], row.get("value"), None, None, None]
    for row in resultRows:
        target = merged.setdefault(row["time"], [row["time"], None, None, None, None])
        for offset, column in enumerate(RESULT_COLUMNS, start=2):
            target[offset] = row.get(column)
    rows = [merged[time] for time in sorted(merged)]
    return CombinedData(name=name, modelId=modelId, rows=rows)
