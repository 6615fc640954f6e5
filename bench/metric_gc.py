"""Metric garbage collector on a large metric_data table, with concurrent inserts.

Usage: python bench/metric_gc.py [--rows 1000000] [--metrics 100] [--threshold-days 90]
                                 [--batch-size 1000]

In a scratch database (created with the schema, dropped at the end) it fills metric_data with
--rows rows spread over --metrics metrics and 2 x --threshold-days days (half of them older
than the threshold, none within an hour of it), then runs
`metric_garbage_collector.purgeOldMetricDataRows` while a second connection keeps inserting
one-row batches with `addMetricData` (as the metric storer does) and times every insert. It
checks that exactly the old rows were deleted (the young ones and the concurrent inserts all
remain) and prints the figures; the last line is ``gc_rows=... deleted=... seconds=...
max_insert_wait_s=...``. Needs MariaDB (application.conf [repository]; APPLICATION_CONFIG_PATH
defaults to the repository's conf/).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("APPLICATION_CONFIG_PATH", str(REPO_ROOT / "conf"))

import sqlalchemy as sa  # noqa: E402
from tqdm import tqdm  # noqa: E402

from htmengine import repository  # noqa: E402
from htmengine.repository import schema  # noqa: E402
from htmengine.runtime.metric_garbage_collector import purgeOldMetricDataRows  # noqa: E402
from htmengine.test_utils.repository_test_utils import (  # noqa: E402
    HtmengineManagedTempRepository,
)

INSERT_CHUNK = 20000


def fill(engine: sa.Engine, rows: int, metrics: int, thresholdDays: int) -> tuple[int, list]:
    """Add `metrics` metrics and `rows` rows; returns (number of rows older than the
    threshold, metric uids). Row i of a metric is i * step before now + 1 hour, so rows are
    never within an hour of `thresholdDays` days back."""
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    perMetric = rows // metrics
    span = timedelta(days=2 * thresholdDays)
    step = span / perMetric
    threshold = now - timedelta(days=thresholdDays)
    uids = [f"gcbench{m:025d}" for m in range(metrics)]
    old = 0
    with engine.begin() as conn:
        for uid in uids:
            conn.execute(schema.metric.insert().values(
                uid=uid, name=uid, datasource="custom", status=0, last_rowid=perMetric))
    with tqdm(total=perMetric * metrics, unit="row", desc="filling metric_data") as bar:
        batch: list[dict] = []
        for uid in uids:
            for i in range(perMetric):
                ts = now - timedelta(hours=1) - step * i
                if abs(ts - threshold) < timedelta(hours=1):
                    ts -= timedelta(hours=2)
                old += ts < threshold
                batch.append({"uid": uid, "rowid": perMetric - i, "timestamp": ts,
                              "metric_value": float(i)})
                if len(batch) == INSERT_CHUNK:
                    with engine.begin() as conn:
                        conn.execute(schema.metric_data.insert(), batch)
                    bar.update(len(batch))
                    batch = []
        if batch:
            with engine.begin() as conn:
                conn.execute(schema.metric_data.insert(), batch)
            bar.update(len(batch))
    return old, uids


class Inserter(threading.Thread):
    """Inserts one-row batches for one metric until stopped; records each insert's time."""

    def __init__(self, engine: sa.Engine, uid: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.uid = engine, uid
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                started = time.monotonic()
                with self.engine.connect() as conn:
                    repository.addMetricData(conn, self.uid, [
                        (1.0, datetime.now(UTC).replace(tzinfo=None, microsecond=0))])
                self.latencies.append(time.monotonic() - started)
                time.sleep(0.01)
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--threshold-days", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    with HtmengineManagedTempRepository("gcbench") as temp:
        engine = repository.engineFactory()
        print(f"scratch database {temp.tempDatabaseName}")
        old, uids = fill(engine, args.rows, args.metrics, args.threshold_days)
        total = args.rows // args.metrics * args.metrics
        with engine.begin() as conn:
            conn.execute(schema.metric.insert().values(uid="gcbenchwriter", name="writer",
                                                       datasource="custom", status=0))
        inserter = Inserter(engine, "gcbenchwriter")
        inserter.start()
        time.sleep(0.5)   # inserts before the purge give the baseline latency
        baseline = len(inserter.latencies)
        started = time.monotonic()
        deleted = purgeOldMetricDataRows(args.threshold_days, args.batch_size, engine=engine,
                                         progress=True)
        seconds = time.monotonic() - started
        during = inserter.latencies[baseline:]
        inserter.stop.set()
        inserter.join(30)
        if inserter.error is not None:
            raise inserter.error
        with engine.connect() as conn:
            remaining = conn.execute(sa.select(sa.func.count()).select_from(
                schema.metric_data).where(schema.metric_data.c.uid != "gcbenchwriter")
            ).scalar_one()
            written = conn.execute(sa.select(sa.func.count()).select_from(
                schema.metric_data).where(schema.metric_data.c.uid == "gcbenchwriter")
            ).scalar_one()
        exact = deleted == old and remaining == total - old and \
            written == len(inserter.latencies)
        print(f"rows={total} older_than_threshold={old} deleted={deleted} remaining={remaining}"
              f" exact={'yes' if exact else 'NO'}")
        print(f"purge: {seconds:.1f} s, {deleted / seconds:,.0f} rows/s, batches of "
              f"{args.batch_size}")
        print(f"concurrent one-row inserts during the purge: {len(during)}, median "
              f"{statistics.median(during) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms")
        print(f"gc_rows={total} deleted={deleted} seconds={seconds:.1f} "
              f"max_insert_wait_s={max(during):.3f}")
        return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
