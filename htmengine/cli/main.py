"""The ``htmengine`` console command (click): one command for what users of a running engine
do by hand. Every subcommand takes ``--conf DIR`` (default: $APPLICATION_CONFIG_PATH, or the
running application's configuration in a checkout, see nta_utils.config_location)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from tqdm import tqdm

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.cli import clean as clean_module
from htmengine.cli import dead_letters
from htmengine.cli import plot as plot_module
from htmengine.cli.send import send_rows
from htmengine.cli.series import Row, parse_timestamp, read_series
from htmengine.cli.status import collect_status, format_status, list_metrics
from htmengine.cli.tail import follow_results
from htmengine.config import config_dir
from htmengine.exceptions import HTMEngineError, MetricAlreadyMonitored
from htmengine.repository import engineFactory, queries, schema
from nta_utils.config_location import APPLICATION_CONFIG_PATH_ENV
from nta_utils.errors import NtaUtilsError

_F = TypeVar("_F", bound=Callable[..., Any])
MYSQL_UNKNOWN_DATABASE = 1049


def _use_conf(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is None:
        return
    if not (value / "application.conf").is_file():
        raise click.BadParameter(f"{value} has no application.conf")
    os.environ[APPLICATION_CONFIG_PATH_ENV] = str(value.resolve())


def _command(function: _F) -> _F:
    """--conf DIR, and errors of the engine, the bus or the database as one clear line."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (HTMEngineError, NtaUtilsError) as error:
            raise click.ClickException(str(error)) from error
        except sa.exc.OperationalError as error:
            hint = ""
            if getattr(error.orig, "args", (None,))[0] == MYSQL_UNKNOWN_DATABASE:
                hint = (f"; create it with: APPLICATION_CONFIG_PATH={config_dir()} "
                        "python repository/migrate.py (make run does it for skeleton_app/conf)")
            raise click.ClickException(f"database: {error.orig}{hint}") from error

    return click.option(
        "--conf", type=click.Path(file_okay=False, exists=True, path_type=Path),
        expose_value=False, callback=_use_conf,
        help="the application's configuration folder (default: $APPLICATION_CONFIG_PATH, "
             "else skeleton_app/conf)")(wrapper)  # type: ignore[return-value]


def _metric_id(name: str) -> str:
    with engineFactory().connect() as conn:
        return str(queries.getCustomMetricByName(conn, name, fields=[schema.metric.c.uid]).uid)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def cli() -> None:
    """htmengine: look at and drive a running HTM engine (the skeleton application of `make
    run` unless --conf or $APPLICATION_CONFIG_PATH names another)."""


@cli.command()
@click.option("--supervisor-url", envvar="HTMENGINE_SUPERVISOR_URL",
              help="supervisorctl endpoint (default: the supervisord.conf of the conf folder)")
@_command
def status(supervisor_url: str | None) -> None:
    """Services, queue depths, and metrics by status with the reason for each not scoring."""
    click.echo(format_status(collect_status(engineFactory(), supervisor_url)))


@cli.command()
@_command
def metrics() -> None:
    """Every metric: name, status, rows, newest sample, uid."""
    infos = list_metrics(engineFactory())
    if not infos:
        click.echo("no metrics yet (send some: htmengine send NAME VALUE)")
        return
    width = max(len(info.name) for info in infos)
    click.echo(f"{'NAME':<{width}}  {'STATUS':<14} {'ROWS':>8}  {'LAST SAMPLE':<19}  UID")
    for info in infos:
        click.echo(f"{info.name:<{width}}  {info.status:<14} {info.rows:>8}  "
                   f"{info.last_timestamp or '-':<19}  {info.uid}")


@cli.command()
@click.argument("name")
@click.option("--min", "min_value", type=float, help="lowest expected value (with --max)")
@click.option("--max", "max_value", type=float, help="highest expected value (with --min)")
@_command
def monitor(name: str, min_value: float | None, max_value: float | None) -> None:
    """Create the model of metric NAME (created if missing). Without --min/--max the range
    comes from the metric's history: at once with 288 rows or more, else when they arrive."""
    if (min_value is None) != (max_value is None):
        raise click.UsageError("give both --min and --max, or neither")
    spec: dict[str, Any] = {"datasource": "custom", "metricSpec": {"metric": name}}
    if min_value is not None:
        spec["modelParams"] = {"min": min_value, "max": max_value}
    try:
        uid = createDatasourceAdapter("custom").monitorMetric(spec)
    except MetricAlreadyMonitored as error:
        raise click.ClickException(f"{name} is already monitored (model {error.uid})") from None
    with engineFactory().connect() as conn:
        state = queries.getMetric(conn, uid, fields=[schema.metric.c.status]).status
    if state == queries.MetricStatus.PENDING_DATA:
        click.echo(f"{name} ({uid}) waits for data: its model is created once it has enough "
                   "rows to choose the range")
    else:
        click.echo(f"Model {uid} created for {name}")


@cli.command()
@click.argument("name")
@_command
def unmonitor(name: str) -> None:
    """Delete the model of metric NAME and clear its scores; its data stays."""
    uid = _metric_id(name)
    createDatasourceAdapter("custom").unmonitorMetric(uid)
    click.echo(f"{name} ({uid}) is no longer monitored")


@cli.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@_command
def delete(name: str, yes: bool) -> None:
    """Delete metric NAME with all its data and its model."""
    uid = _metric_id(name)
    if not yes:
        click.confirm(f"Delete {name} ({uid}) with all its data and its model?", abort=True)
    createDatasourceAdapter("custom").deleteMetricByName(name)
    click.echo(f"deleted {name} ({uid})")


@cli.command()
@click.argument("name", required=False)
@click.argument("value", required=False, type=float)
@click.argument("timestamp", required=False)
@click.option("--csv", "csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="send every row of a 'timestamp,value' CSV file (NAB's format)")
@click.option("--metric", help="the metric name for --csv")
@_command
def send(name: str | None, value: float | None, timestamp: str | None, csv_file: Path | None,
         metric: str | None) -> None:
    """Send one sample (NAME VALUE [TIMESTAMP], default now; 'YYYY-mm-dd HH:MM:SS' UTC or Unix
    seconds), or a CSV file (--csv FILE --metric NAME, with a progress bar)."""
    if csv_file is not None:
        if name is not None or metric is None:
            raise click.UsageError("with --csv give --metric NAME and no positional arguments")
        rows = read_series(csv_file)
        with tqdm(total=len(rows), unit="rows", desc=f"sending {metric}") as bar:
            sent = send_rows(metric, rows, bar.update)
        click.echo(f"sent {sent} rows of {csv_file} to {metric}")
        return
    if name is None or value is None:
        raise click.UsageError("give NAME VALUE [TIMESTAMP], or --csv FILE --metric NAME")
    when = (parse_timestamp(timestamp, "TIMESTAMP") if timestamp is not None
            else datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    send_rows(name, [Row(when, value)])
    click.echo(f"sent {name} {value:g} @ {when:%Y-%m-%d %H:%M:%S}")


@cli.command()
@click.argument("name", required=False)
@click.option("--count", type=int, default=0, help="stop after this many lines (0: never)")
@click.option("--idle-timeout", type=float, default=None,
              help="stop after this many seconds without a result")
@_command
def tail(name: str | None, count: int, idle_timeout: float | None) -> None:
    """Follow the results exchange: one line per scored row (of NAME only, if given)."""
    printed = 0
    ready = functools.partial(click.echo, "following the results exchange (Ctrl-C stops)",
                              err=True)
    try:
        for line in follow_results(name, idle_timeout, on_ready=ready):
            click.echo(line)
            printed += 1
            if count and printed >= count:
                return
    except KeyboardInterrupt:
        return


@cli.command()
@click.argument("name")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the PNG file to write")
@click.option("--threshold", type=float, default=plot_module.DEFAULT_THRESHOLD,
              show_default=True, help="anomaly likelihood marked as an anomaly")
@_command
def plot(name: str, output: Path, threshold: float) -> None:
    """Plot metric NAME to a PNG: values with anomalies marked, anomaly likelihood below."""
    points = plot_module.metric_points(engineFactory(), _metric_id(name))
    path, anomalies = plot_module.plot_points(points, output, name, threshold)
    click.echo(f"wrote {path} ({len(points)} rows, {anomalies} anomalies marked)")


@cli.command()
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@_command
def clean(yes: bool) -> None:
    """Remove the application's database, queues, results exchange and model checkpoints
    (stop its services first: `make clean` does both)."""
    if not yes:
        click.confirm("Remove this application's database, queues, exchange and checkpoints?",
                      abort=True)
    started = time.monotonic()
    for line in clean_module.clean_application().lines():
        click.echo(line)
    click.echo(f"cleaned in {time.monotonic() - started:.1f} s")


_QUEUE_OPTION = click.option(
    "--queue", help="the consumed queue whose dead letters to handle (default: the "
                    "custom-metrics queue, [metric_listener] queue_name)")


@cli.group()
def dlq() -> None:
    """Dead letters: messages a service could not decode or process, kept with the reason in
    <app>.dlq.<queue> (list, show, requeue)."""


@dlq.command("list")
@_QUEUE_OPTION
@_command
def dlq_list(queue: str | None) -> None:
    """List the dead letters: index, id, attempts, time, size and reason."""
    for line in dead_letters.list_lines(queue or dead_letters.default_queue()):
        click.echo(line)


@dlq.command("show")
@click.argument("which")
@_QUEUE_OPTION
@_command
def dlq_show(which: str, queue: str | None) -> None:
    """Show dead letter WHICH (its index in `list` or its id) with its headers and body."""
    try:
        lines = dead_letters.show_lines(queue or dead_letters.default_queue(), which)
    except LookupError as error:
        raise click.ClickException(str(error)) from error
    for line in lines:
        click.echo(line)


@dlq.command("requeue")
@click.argument("which", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="requeue every dead letter")
@_QUEUE_OPTION
@_command
def dlq_requeue(which: tuple[str, ...], everything: bool, queue: str | None) -> None:
    """Publish dead letters WHICH... (indexes or ids; or --all) back to their queue."""
    if not which and not everything:
        raise click.UsageError("name dead letters to requeue (index or id) or give --all")
    try:
        count = dead_letters.requeue(queue or dead_letters.default_queue(), list(which))
    except LookupError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"requeued {count} dead letter{'s' if count != 1 else ''}")


def main() -> None:
    """Console entry point."""
    cli(prog_name="htmengine")


if __name__ == "__main__":
    main()
