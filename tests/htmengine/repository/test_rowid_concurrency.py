"""Rowid allocation under concurrency: 8 threads, each on its own connection, add 50 rows
(in batches of 1-5) to one metric; the rowids are exactly 1..400 with no duplicates, each
returned batch is contiguous, and every stored row holds the value its caller was told."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

from htmengine.repository import queries
from nta_utils.db import create_mysql_engine

THREADS = 8
ROWS_PER_THREAD = 50


def _batches(rng: random.Random, total: int) -> list[int]:
    sizes = []
    while total > 0:
        size = min(total, rng.randint(1, 5))
        sizes.append(size)
        total -= size
    return sizes


def test_concurrent_add_metric_data_gives_contiguous_unique_rowids(
        sql_engine: sa.Engine) -> None:
    engine = create_mysql_engine(sql_engine.url, pool_size=THREADS)
    with engine.connect() as conn:
        uid = queries.addMetric(conn, datasource="custom",
                                name=f"test.rowid.{uuid.uuid4().hex[:10]}").uid
    start = threading.Barrier(THREADS, timeout=30)
    returned: dict[int, list[list[dict]]] = {}
    errors: list[BaseException] = []
    t0 = datetime(2020, 1, 1)

    def worker(thread_no: int) -> None:
        rng = random.Random(thread_no)
        batches: list[list[dict]] = []
        try:
            with engine.connect() as conn:
                start.wait()
                sent = 0
                for size in _batches(rng, ROWS_PER_THREAD):
                    # value encodes (thread, sequence) so stored rows can be traced back
                    data = [(thread_no * 1000 + sent + i,
                             t0 + timedelta(seconds=thread_no * 1000 + sent + i))
                            for i in range(size)]
                    batches.append(queries.addMetricData(conn, uid, data))
                    sent += size
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        returned[thread_no] = batches

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == []
        all_rowids = [row["rowid"] for batches in returned.values()
                      for batch in batches for row in batch]
        assert sorted(all_rowids) == list(range(1, THREADS * ROWS_PER_THREAD + 1))
        for batches in returned.values():
            assert sum(len(batch) for batch in batches) == ROWS_PER_THREAD
            for batch in batches:
                rowids = [row["rowid"] for row in batch]
                assert rowids == list(range(rowids[0], rowids[0] + len(batch)))
        with engine.connect() as conn:
            stored = {r.rowid: r.metric_value for r in queries.getMetricData(conn, uid)}
            assert queries.getMetric(conn, uid).last_rowid == THREADS * ROWS_PER_THREAD
        told = {row["rowid"]: row["metric_value"] for batches in returned.values()
                for batch in batches for row in batch}
        assert stored == told
    finally:
        with engine.connect() as conn:
            queries.deleteMetric(conn, uid)
        engine.dispose()
