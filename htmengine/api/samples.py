"""Checking posted samples and explaining, per sample, why one was not stored."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from htmengine.api.schemas import Sample, SampleVerdict
from htmengine.metric_reasons import sample_rejection
from htmengine.pipeline.metric_streamer import StoreResult

# Timestamps the engine accepts: DATETIME without fractions, 1970 ... 9999.
_MAX_EPOCH = 253402300799


@dataclass
class CheckedSample:
    """A posted sample, parsed, or the reason it cannot be used."""

    index: int
    timestamp: datetime | None
    value: float | None
    reason: str | None = None


def _parse_iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither epoch seconds nor ISO 8601") from None
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. year 1 with a positive offset, year 9999 with a negative
            raise ValueError(f"timestamp {text!r} is outside the years 1-9999 in UTC") from None
    if parsed.year < 1970:
        raise ValueError(f"timestamp {text!r} is before 1970")
    return parsed.replace(microsecond=0)


def parse_timestamp(raw: float | str) -> datetime:
    """Naive UTC datetime (whole seconds) of epoch seconds or an ISO 8601 string;
    ValueError naming the problem."""
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = float(text)
        except ValueError:
            return _parse_iso(text)
    if not math.isfinite(raw) or not 0 <= raw <= _MAX_EPOCH:
        raise ValueError(f"timestamp {raw!r} is not epoch seconds between 0 and {_MAX_EPOCH}")
    return datetime.fromtimestamp(int(raw), UTC).replace(tzinfo=None)


def parse_value(raw: float | str) -> float:
    """The sample's value as a finite float; ValueError naming the problem."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"value {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"value {raw!r} is not a finite number")
    return value


def check_samples(samples: list[Sample]) -> list[CheckedSample]:
    """Each sample parsed, or with the reason it is rejected before storage."""
    checked = []
    for index, sample in enumerate(samples):
        try:
            timestamp = parse_timestamp(sample.timestamp)
        except ValueError as error:
            checked.append(CheckedSample(index, None, None, str(error)))
            continue
        try:
            checked.append(CheckedSample(index, timestamp, parse_value(sample.value)))
        except ValueError as error:
            checked.append(CheckedSample(index, timestamp, None, str(error)))
    return checked


def verdicts(checked: list[CheckedSample], result: StoreResult | None,
             last_before: datetime | None) -> list[SampleVerdict]:
    """Per-sample answers. The storer keeps, in order, each sample newer than the previous
    kept one (and than `last_before`, the newest stored before), so walking the samples and
    the stored rows side by side finds which were kept."""
    rows = list(result.rows) if result is not None else []
    answers = []
    position = 0
    previous = last_before
    for sample in checked:
        if sample.reason is not None or sample.timestamp is None:
            answers.append(SampleVerdict(index=sample.index, timestamp=sample.timestamp,
                                         accepted=False, reason=sample.reason))
            continue
        if position < len(rows) and rows[position].timestamp == sample.timestamp:
            answers.append(SampleVerdict(index=sample.index, timestamp=sample.timestamp,
                                         accepted=True, rowid=rows[position].rowid))
            previous = sample.timestamp
            position += 1
            continue
        status = result.status if result is not None and result.dropped else None
        reason = (sample_rejection(sample.timestamp, previous, status)
                  or "not stored (newer samples were stored concurrently)")
        answers.append(SampleVerdict(index=sample.index, timestamp=sample.timestamp,
                                     accepted=False, reason=reason))
    return answers
