"""Checks every ingest path applies to a sample before it is stored: the metric listener, the
metric storer, the skeleton web app (and the HTTP API, which calls the same functions).

- values: finite and of magnitude at most ``MAX_ABS_VALUE``. The value encoder computes
  ``(value - offset) / resolution`` and rounds it to an int: two finite doubles near
  1.8e308 overflow that to inf (``OverflowError``, the model of the metric fails). With both
  magnitudes ≤ 1e100 the quotient stays finite for every resolution above 1e-200, far below
  any resolution a model gets (``minResolution`` is positive and at least 1e-6 in practice).
- timestamps: not later than the receiver's clock plus a horizon, ``[samples]
  future_horizon_seconds`` of application.conf (default 86400 = one day). A far-future
  sample would otherwise be stored and make every real sample after it "older than the last
  one", blocking the metric for good.

Each check raises InvalidInputError (a ValueError) whose message names the sample and the
reason; callers log it once with the sample's source and keep the other samples.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from htmengine.config import app_config
from htmengine.exceptions import InvalidInputError

MAX_ABS_VALUE = 1e100
DEFAULT_FUTURE_HORIZON_SECONDS = 86400.0
CONFIG_SECTION = "samples"
CONFIG_OPTION = "future_horizon_seconds"


def future_horizon_seconds() -> float:
    """The configured horizon (``[samples] future_horizon_seconds``), default one day."""
    text = app_config().get(CONFIG_SECTION, CONFIG_OPTION, fallback=None)
    if text is None or not str(text).strip():
        return DEFAULT_FUTURE_HORIZON_SECONDS
    try:
        horizon = float(text)
    except ValueError:
        raise InvalidInputError(
            f"application.conf [{CONFIG_SECTION}] {CONFIG_OPTION} = {text!r} is not a "
            f"number of seconds") from None
    if not (math.isfinite(horizon) and horizon >= 0):
        raise InvalidInputError(
            f"application.conf [{CONFIG_SECTION}] {CONFIG_OPTION} = {text!r} must be a "
            f"finite number of seconds >= 0")
    return horizon


def check_value(name: str, value: float) -> None:
    """InvalidInputError unless `value` is finite with magnitude ≤ MAX_ABS_VALUE."""
    if not math.isfinite(value):
        raise InvalidInputError(f"value {value!r} of metric {name!r} is not a finite number")
    if abs(value) > MAX_ABS_VALUE:
        raise InvalidInputError(
            f"value {value!r} of metric {name!r} is outside the range the model can encode "
            f"(magnitude at most {MAX_ABS_VALUE:g})")


def utc_now_naive() -> datetime:
    """The receiver's clock as a naive UTC datetime (the type of metric_data.timestamp)."""
    return datetime.now(UTC).replace(tzinfo=None)


def check_timestamp(name: str, timestamp: datetime, horizon_seconds: float,
                    now: datetime | None = None) -> None:
    """InvalidInputError if naive-UTC `timestamp` is later than `now` (default: the clock)
    plus `horizon_seconds`."""
    limit = (now or utc_now_naive()) + timedelta(seconds=horizon_seconds)
    if timestamp > limit:
        raise InvalidInputError(
            f"timestamp {timestamp.isoformat(sep=' ')} UTC of metric {name!r} is more than "
            f"{horizon_seconds:g} s ahead of the receiver's clock (limit "
            f"{limit.isoformat(sep=' ', timespec='seconds')} UTC; "
            f"[{CONFIG_SECTION}] {CONFIG_OPTION})")


def check_sample(name: str, value: float, timestamp: datetime, horizon_seconds: float,
                 now: datetime | None = None) -> None:
    """Both checks; InvalidInputError naming the first problem."""
    check_value(name, value)
    check_timestamp(name, timestamp, horizon_seconds, now)
