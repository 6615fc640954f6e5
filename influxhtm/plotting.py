"""PNG plot of a sensor's values above its anomaly likelihood (and raw anomaly score)."""

from __future__ import annotations

from pathlib import Path

from influxhtm.combined import CombinedData
from influxhtm.errors import InfluxHtmInputError


def plotCombinedData(data: CombinedData, path: str | Path, title: str | None = None,
                     width: float = 12.0, height: float = 6.0, dpi: int = 100) -> Path:
    """Write `data` (from Sensor.getCombinedSensorData) as a PNG at `path`: values on top,
    anomaly likelihood and raw anomaly score below, sharing the time axis. Uses matplotlib's
    Agg canvas directly, so no display and no global backend switch are needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not len(data):
        raise InfluxHtmInputError(f"nothing to plot for {data.name!r}: no rows")
    target = Path(path)
    if target.suffix.lower() != ".png":
        raise InfluxHtmInputError(f"plot path {str(target)!r} must end in .png")
    times = data.times()
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    valueAxes, anomalyAxes = figure.subplots(2, 1, sharex=True)
    valueAxes.plot(times, data.column("value"), color="tab:blue", linewidth=0.8, label="value")
    valueAxes.set_ylabel("value")
    valueAxes.set_title(title or data.name)
    scores = data.column("anomalyScore")
    likelihoods = data.column("anomalyLikelihood")
    if any(score is not None for score in scores):
        anomalyAxes.plot(times, [float("nan") if s is None else s for s in scores],
                         color="tab:gray", linewidth=0.5, alpha=0.6, label="raw anomaly score")
    if any(likelihood is not None for likelihood in likelihoods):
        anomalyAxes.plot(times, [float("nan") if x is None else x for x in likelihoods],
                         color="tab:red", linewidth=0.9, label="anomaly likelihood")
    anomalyAxes.set_ylim(-0.02, 1.02)
    anomalyAxes.set_ylabel(f"model {data.modelId}" if data.modelId else "no HTM model")
    anomalyAxes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png")
    return target
