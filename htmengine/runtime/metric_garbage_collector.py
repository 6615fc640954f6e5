"""Metric garbage collector: deletes `metric_data` rows whose timestamp is older than
``--thresholdDays`` days (UTC), in bounded batches (each a short transaction deleting at most
``--batchSize`` rows by primary key) so that it never holds locks for long and the metric
storer's concurrent inserts go on. Runs every hour until stopped, or once with ``--once``.

NOTE (as in the original): not for applications that accept custom metric data with arbitrary
past timestamps, whose old rows would be purged at the next pass.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from tqdm import tqdm

from htmengine.exceptions import InvalidInputError
from htmengine.repository import engineFactory
from htmengine.repository.metric_data_purge_queries import (
    countMetricDataOlderThan,
    deleteMetricDataRows,
    getMetricDataPurgeThreshold,
    getOldMetricDataKeys,
)
from htmengine.runtime.service_support import StopFlag, configureServiceLogging
from nta_utils.db import retry_on_transient_error

g_log = logging.getLogger("htmengine.runtime.metric_garbage_collector")

# Most rows deleted per transaction (the original's bound against lock wait timeouts).
_MAX_DELETE_BATCH_SIZE = 1000
# Seconds between passes of the service loop.
_PAUSE_INTERVAL_SEC = 3600


@retry_on_transient_error
def _threshold(engine: sa.Engine, thresholdDays: int) -> tuple[datetime, int]:
    with engine.connect() as conn:
        threshold = getMetricDataPurgeThreshold(conn, thresholdDays)
        return threshold, countMetricDataOlderThan(conn, threshold)


@retry_on_transient_error
def _purgeBatch(engine: sa.Engine, threshold: datetime, limit: int) -> tuple[int, int]:
    """(keys found, rows deleted) of one batch."""
    with engine.connect() as conn:
        keys = getOldMetricDataKeys(conn, threshold, limit)
        conn.rollback()   # end the read's transaction before the delete's own
        return len(keys), (deleteMetricDataRows(conn, keys, threshold) if keys else 0)


def purgeOldMetricDataRows(thresholdDays: int, batchSize: int = _MAX_DELETE_BATCH_SIZE,
                           engine: sa.Engine | None = None, progress: bool = False) -> int:
    """Delete the metric_data rows with timestamps older than `thresholdDays` days before now
    (the database's UTC clock, read once at the start), oldest first, at most `batchSize` rows
    per transaction; returns the number of rows deleted.

    :param progress: show a progress bar on stderr (when it is a terminal)
    """
    if not isinstance(batchSize, int) or batchSize < 1:
        raise InvalidInputError(f"batchSize must be a positive integer, got {batchSize!r}")
    engine = engine if engine is not None else engineFactory()
    threshold, estimate = _threshold(engine, thresholdDays)
    g_log.info("Rows of metric_data older than %s (%d days): %d", threshold, thresholdDays,
               estimate)
    totalDeleted = 0
    with tqdm(total=estimate, unit="row", desc="purging metric_data",
              disable=not progress or None) as bar:
        while True:
            found, deleted = _purgeBatch(engine, threshold, batchSize)
            totalDeleted += deleted
            bar.update(deleted)
            if found:
                g_log.debug("Purged %d old metric data rows [%d of %d]", deleted,
                            totalDeleted, estimate)
            if found < batchSize:
                break
    g_log.info("Purged %d metric_data rows older than %s (estimated %d)", totalDeleted,
               threshold, estimate)
    return totalDeleted


def _parseArgs(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m htmengine.runtime.metric_garbage_collector",
        description=__doc__.split("\n\n")[0])
    parser.add_argument("--thresholdDays", "--threshold-days", type=int, required=True,
                        dest="thresholdDays", metavar="N",
                        help="delete metric_data rows with timestamps (UTC) older than N days; "
                             "N > 0")
    parser.add_argument("--batchSize", type=int, default=_MAX_DELETE_BATCH_SIZE, metavar="ROWS",
                        help="most rows deleted per transaction (default %(default)s)")
    parser.add_argument("--interval", type=float, default=_PAUSE_INTERVAL_SEC, metavar="SEC",
                        help="seconds between passes (default %(default)s)")
    parser.add_argument("--once", action="store_true",
                        help="purge once (with a progress bar on a terminal) and exit")
    args = parser.parse_args(argv)
    if args.thresholdDays <= 0:
        parser.error(f"--thresholdDays must be greater than zero, got {args.thresholdDays}")
    if args.batchSize <= 0:
        parser.error(f"--batchSize must be greater than zero, got {args.batchSize}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see --help)."""
    args = _parseArgs(argv)
    configureServiceLogging("metric_garbage_collector")
    if args.once:
        deleted = purgeOldMetricDataRows(args.thresholdDays, args.batchSize, progress=True)
        print(f"deleted {deleted} metric_data rows older than {args.thresholdDays} days")
        return 0
    stop = StopFlag().install()
    while not stop.isSet:
        purgeOldMetricDataRows(args.thresholdDays, args.batchSize)
        g_log.info("Resuming in %s seconds...", args.interval)
        deadline = time.monotonic() + args.interval
        while not stop.isSet and time.monotonic() < deadline:
            time.sleep(min(1.0, deadline - time.monotonic()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
