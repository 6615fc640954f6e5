"""PNG of a metric: its values on top with the anomalies marked, its anomaly likelihood (and
raw anomaly score) below. Used by ``htmengine plot`` and ``make demo``; needs the plot extra
(matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from htmengine.exceptions import HTMEngineError
from htmengine.repository import queries, schema

DEFAULT_THRESHOLD = 0.9999


class PlotError(HTMEngineError):
    """The plot cannot be made (nothing to plot, bad path, matplotlib missing)."""


@dataclass(frozen=True)
class PlotPoint:
    """One row of the metric: value and, once scored, its scores."""

    timestamp: datetime
    value: float
    likelihood: float | None
    raw: float | None


def metric_points(engine: sa.Engine, metric_id: str) -> list[PlotPoint]:
    """Every stored row of the metric, in time order."""
    md = schema.metric_data
    with engine.connect() as conn:
        rows = queries.getMetricData(conn, metric_id, fields=[
            md.c.timestamp, md.c.metric_value, md.c.anomaly_score, md.c.raw_anomaly_score])
        return [PlotPoint(row.timestamp, row.metric_value, row.anomaly_score,
                          row.raw_anomaly_score) for row in rows]


def _matplotlib() -> tuple[type, type]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise PlotError("plotting needs matplotlib, the plot extra: pip install -e '.[plot]' "
                        "(or make venv-plot)") from None
    return Figure, FigureCanvasAgg


def plot_points(points: Sequence[PlotPoint], path: str | Path, title: str,
                threshold: float = DEFAULT_THRESHOLD) -> tuple[Path, int]:
    """Write the PNG; returns (its path, how many anomalies, i.e. rows whose likelihood is at
    least `threshold`, were marked)."""
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise PlotError(f"plot path {str(target)!r} must end in .png")
    if not points:
        raise PlotError(f"nothing to plot for {title!r}: no rows")
    figure_type, canvas_type = _matplotlib()
    times = [p.timestamp for p in points]
    anomalies = [p for p in points if p.likelihood is not None and p.likelihood >= threshold]
    figure = figure_type(figsize=(12.0, 6.0), dpi=100)
    canvas_type(figure)
    value_axes, score_axes = figure.subplots(2, 1, sharex=True)
    value_axes.plot(times, [p.value for p in points], color="tab:blue", linewidth=0.8,
                    label="value")
    if anomalies:
        value_axes.scatter([p.timestamp for p in anomalies], [p.value for p in anomalies],
                           color="tab:red", s=30, zorder=3,
                           label=f"anomaly (likelihood >= {threshold:g})")
    value_axes.set_ylabel("value")
    value_axes.set_title(title)
    value_axes.legend(loc="upper left", fontsize="small")
    nan = float("nan")
    score_axes.plot(times, [nan if p.raw is None else p.raw for p in points], color="tab:gray",
                    linewidth=0.5, alpha=0.6, label="raw anomaly score")
    score_axes.plot(times, [nan if p.likelihood is None else p.likelihood for p in points],
                    color="tab:red", linewidth=0.9, label="anomaly likelihood")
    score_axes.axhline(threshold, color="tab:red", linestyle=":", linewidth=0.6)
    score_axes.set_ylim(-0.02, 1.02)
    score_axes.set_ylabel("score")
    score_axes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target, len(anomalies)
