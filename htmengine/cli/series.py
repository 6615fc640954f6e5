"""Reading a ``timestamp,value`` CSV series (NAB's format): used by ``htmengine send --csv``
and the skeleton demo."""

from __future__ import annotations

import calendar
import csv
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from htmengine.exceptions import HTMEngineError

TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


class SeriesError(HTMEngineError, ValueError):
    """A series file cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Row:
    """One sample of the series (naive UTC timestamp)."""

    timestamp: datetime
    value: float

    @property
    def epoch(self) -> int:
        """Unix time of the sample."""
        return calendar.timegm(self.timestamp.timetuple())


def parse_timestamp(text: str, where: str) -> datetime:
    """A naive UTC datetime from 'YYYY-mm-dd HH:MM:SS' (or ISO 'T', or Unix seconds)."""
    stripped = text.strip()
    if stripped.isdigit():
        return datetime.fromtimestamp(int(stripped), UTC).replace(tzinfo=None)
    for fmt in TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(stripped, fmt)
        except ValueError:
            continue
    raise SeriesError(f"{where}: timestamp {text!r} is not 'YYYY-mm-dd HH:MM:SS' or Unix "
                      "seconds")


def read_series(path: Path, limit: int | None = None) -> list[Row]:
    """The ``timestamp,value`` rows of a CSV file (header first), at most `limit`; rows not
    later than the previous one are skipped with a note on stderr (the engine would drop
    them)."""
    if not path.is_file():
        raise SeriesError(f"data file {path} does not exist")
    rows: list[Row] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
            raise SeriesError(f"{path}: expected a 'timestamp,value' header, got {header!r}")
        for number, record in enumerate(reader, start=2):
            if limit is not None and len(rows) >= limit:
                break
            if len(record) < 2:
                raise SeriesError(f"{path}:{number}: expected 'timestamp,value', got {record!r}")
            try:
                value = float(record[1])
            except ValueError:
                raise SeriesError(f"{path}:{number}: value {record[1]!r} is not a number") \
                    from None
            if not math.isfinite(value):
                raise SeriesError(f"{path}:{number}: value {record[1]!r} is not finite")
            row = Row(parse_timestamp(record[0], f"{path}:{number}"), value)
            if rows and row.epoch <= rows[-1].epoch:
                print(f"{path}:{number}: skipping a row not later than the previous one",
                      file=sys.stderr)
                continue
            rows.append(row)
    if not rows:
        raise SeriesError(f"{path} has no data rows")
    return rows
