"""htmengine.repository.queries against the real, migrated MariaDB database."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from htmengine.exceptions import (
    InvalidInputError,
    MetricAlreadyExists,
    MetricStatisticsNotReadyError,
    MetricStatusChangedError,
    ObjectNotFoundError,
)
from htmengine.repository import queries, schema
from htmengine.repository.queries import MetricStatus
from htmengine.repository.transactions import runInTransaction

T0 = datetime(2015, 6, 1, 12, 0, 0)


def _name() -> str:
    return f"test.metric.{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def conn(sql_engine: sa.Engine):
    with sql_engine.connect() as connection:
        yield connection


@pytest.fixture()
def metric(conn: sa.Connection) -> sa.Row:
    return queries.addMetric(conn, datasource="custom", name=_name(), server="srv",
                             description="probe", poll_interval=300)


def _add_samples(conn: sa.Connection, uid: str, values: list[float],
                 start: datetime = T0) -> list[dict]:
    data = [(value, start + timedelta(minutes=5 * i)) for i, value in enumerate(values)]
    return queries.addMetricData(conn, uid, data)


def test_metric_status_codes() -> None:
    assert [(s.name, int(s)) for s in MetricStatus] == [
        ("UNMONITORED", 0), ("ACTIVE", 1), ("CREATE_PENDING", 2), ("ERROR", 4),
        ("PENDING_DATA", 8)]


def test_add_metric_returns_the_committed_row(sql_engine: sa.Engine, metric: sa.Row) -> None:
    assert len(metric.uid) == 32 and int(metric.uid, 16) >= 0
    assert (metric.status, metric.last_rowid, metric.poll_interval) == (0, 0, 300)
    with sql_engine.connect() as other:  # visible from another connection: committed
        assert queries.getMetric(other, metric.uid) == metric
        assert queries.getCustomMetricByName(other, metric.name).uid == metric.uid


def test_server_defaults_apply_to_unset_columns(conn: sa.Connection) -> None:
    row = queries.addMetric(conn, name=_name(), datasource="custom")
    assert (row.status, row.poll_interval, row.message) == (MetricStatus.UNMONITORED, 60, None)


def test_get_with_fields_and_locks(conn: sa.Connection, metric: sa.Row) -> None:
    row = queries.getMetric(conn, metric.uid, fields=[schema.metric.c.name,
                                                      schema.metric.c.status])
    assert tuple(row) == (metric.name, 0)
    conn.rollback()  # end the read's auto-begun transaction before an explicit one
    with conn.begin():
        assert queries.getMetricWithUpdateLock(conn, metric.uid).uid == metric.uid
        assert queries.getMetricWithSharedLock(conn, metric.uid).uid == metric.uid


def test_not_found_errors(conn: sa.Connection) -> None:
    missing = uuid.uuid4().hex
    with pytest.raises(ObjectNotFoundError, match=missing):
        queries.getMetric(conn, missing)
    with pytest.raises(ObjectNotFoundError):
        queries.getCustomMetricByName(conn, _name())
    with pytest.raises(ObjectNotFoundError):
        queries.setMetricStatus(conn, missing, MetricStatus.ACTIVE)
    with pytest.raises(ObjectNotFoundError):
        queries.setMetricStatus(conn, missing, MetricStatus.ACTIVE,
                                refStatus=MetricStatus.UNMONITORED)
    with pytest.raises(ObjectNotFoundError):
        queries.updateMetricColumns(conn, missing, {"message": "x"})
    with pytest.raises(ObjectNotFoundError):
        queries.deleteMetric(conn, missing)
    with pytest.raises(ObjectNotFoundError):
        queries.addMetricData(conn, missing, [(1.0, T0)])
    with pytest.raises(ObjectNotFoundError):
        queries.updateMetricDataColumns(conn, {"uid": missing, "rowid": 1},
                                        {"anomaly_score": 0.5})


def test_duplicate_name_and_uid_raise_metric_already_exists(conn: sa.Connection,
                                                           metric: sa.Row) -> None:
    with pytest.raises(MetricAlreadyExists) as info:
        queries.addMetric(conn, datasource="custom", name=metric.name)
    assert info.value.uid == metric.uid
    with pytest.raises(MetricAlreadyExists) as info:
        queries.addMetric(conn, uid=metric.uid, datasource="custom", name=_name())
    assert info.value.uid == metric.uid
    # Same name under another datasource is a different metric.
    other = queries.addMetric(conn, datasource="other", name=metric.name)
    assert other.uid != metric.uid
    assert queries.getCustomMetricByName(conn, metric.name).uid == metric.uid


def test_concurrent_adds_of_one_name_create_one_metric(sql_engine: sa.Engine) -> None:
    name = _name()
    outcomes: list[str] = []

    def add() -> None:
        with sql_engine.connect() as connection:
            try:
                queries.addMetric(connection, datasource="custom", name=name)
                outcomes.append("added")
            except MetricAlreadyExists:
                outcomes.append("exists")

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["added", "exists", "exists", "exists"]


def test_set_status_against_reference_status(conn: sa.Connection, metric: sa.Row) -> None:
    queries.setMetricStatus(conn, metric.uid, MetricStatus.CREATE_PENDING,
                            refStatus=MetricStatus.UNMONITORED)
    with pytest.raises(MetricStatusChangedError, match="status 2"):
        queries.setMetricStatus(conn, metric.uid, MetricStatus.ACTIVE,
                                refStatus=MetricStatus.UNMONITORED)
    assert queries.getMetric(conn, metric.uid).status == MetricStatus.CREATE_PENDING
    queries.setMetricStatus(conn, metric.uid, MetricStatus.ERROR, message="boom")
    row = queries.getMetric(conn, metric.uid)
    assert (row.status, row.message) == (MetricStatus.ERROR, "boom")
    # Setting the same values again matches the row (found rows, not changed rows).
    queries.setMetricStatus(conn, metric.uid, MetricStatus.ERROR, message="boom")
    queries.setMetricStatus(conn, metric.uid, MetricStatus.ACTIVE)
    assert queries.getMetric(conn, metric.uid).message is None


def test_update_metric_columns(conn: sa.Connection, metric: sa.Row) -> None:
    queries.updateMetricColumns(conn, metric.uid, {"parameters": '{"a": 1}',
                                                   "model_params": "{}"})
    row = queries.getMetric(conn, metric.uid)
    assert (row.parameters, row.model_params) == ('{"a": 1}', "{}")
    result = queries.updateMetricColumnsForRefStatus(conn, metric.uid, MetricStatus.ACTIVE,
                                                     {"message": "not applied"})
    assert result.rowcount == 0
    result = queries.updateMetricColumnsForRefStatus(conn, metric.uid, MetricStatus.UNMONITORED,
                                                     {"status": MetricStatus.PENDING_DATA})
    assert result.rowcount == 1
    assert queries.getMetric(conn, metric.uid).status == MetricStatus.PENDING_DATA
    with pytest.raises(ValueError, match="no_such_column"):
        queries.updateMetricColumns(conn, metric.uid, {"no_such_column": 1})
    stamp = datetime(2016, 1, 2, 3, 4, 5)
    queries.setMetricLastTimestamp(conn, metric.uid, stamp)
    queries.setMetricCollectorError(conn, metric.uid, "collector down")
    row = queries.getMetric(conn, metric.uid)
    assert (row.last_timestamp, row.collector_error) == (stamp, "collector down")


def test_add_metric_data_allocates_contiguous_rowids(conn: sa.Connection,
                                                     metric: sa.Row) -> None:
    first = _add_samples(conn, metric.uid, [1.0, 2.0, 3.0])
    second = _add_samples(conn, metric.uid, [4.5], start=T0 + timedelta(hours=1))
    assert [r["rowid"] for r in first + second] == [1, 2, 3, 4]
    assert first[1] == {"uid": metric.uid, "rowid": 2, "timestamp": T0 + timedelta(minutes=5),
                        "metric_value": 2.0}
    assert queries.getMetric(conn, metric.uid).last_rowid == 4
    assert queries.addMetricData(conn, metric.uid, []) == []
    assert queries.getMetricDataCount(conn, metric.uid) == 4
    aware = datetime(2015, 6, 2, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    (row,) = queries.addMetricData(conn, metric.uid, [(7, aware)])
    stored = queries.getMetricData(conn, metric.uid, rowid=row["rowid"]).one()
    assert stored.timestamp == datetime(2015, 6, 2, 12, 0)  # stored as naive UTC
    assert aware.astimezone(UTC).hour == 12


@pytest.mark.parametrize("bad", [[(1.0,)], [("x", T0)], [(float("nan"), T0)],
                                 [(1.0, "2015-01-01")], [(True, T0)]])
def test_add_metric_data_rejects_malformed_samples(conn: sa.Connection, metric: sa.Row,
                                                   bad: list) -> None:
    with pytest.raises(InvalidInputError, match=r"data\[0\]"):
        queries.addMetricData(conn, metric.uid, bad)
    assert queries.getMetric(conn, metric.uid).last_rowid == 0


def test_add_metric_data_joins_and_rolls_back_with_the_callers_transaction(
        conn: sa.Connection, metric: sa.Row) -> None:
    with pytest.raises(RuntimeError):
        with conn.begin():
            _add_samples(conn, metric.uid, [1.0, 2.0])
            raise RuntimeError("abort")
    assert queries.getMetric(conn, metric.uid).last_rowid == 0
    assert queries.getMetricDataCount(conn, metric.uid) == 0
    conn.rollback()  # end the read's auto-begun transaction


def test_get_metric_data_selections(conn: sa.Connection, metric: sa.Row) -> None:
    _add_samples(conn, metric.uid, [float(v) for v in range(10)])  # rowids 1..10
    for rowid, score in [(2, 0.1), (5, 0.9), (7, 0.5), (9, 0.0)]:
        queries.updateMetricDataColumns(conn, {"uid": metric.uid, "rowid": rowid},
                                        {"anomaly_score": score, "raw_anomaly_score": score})

    def rowids(**kwargs) -> list[int]:
        return [r.rowid for r in queries.getMetricData(conn, metric.uid, **kwargs)]

    assert rowids() == list(range(1, 11))
    assert rowids(rowid=4) == [4]
    assert rowids(start=3, stop=6) == [3, 4, 5, 6]
    assert rowids(start=8) == [8, 9, 10]
    assert rowids(fromTimestamp=T0 + timedelta(minutes=10),
                  toTimestamp=T0 + timedelta(minutes=20)) == [3, 4, 5]
    assert rowids(limit=3) == [1, 2, 3]
    assert rowids(sort=schema.metric_data.c.rowid.desc(), limit=2) == [10, 9]
    assert rowids(sort=schema.metric_data.c.timestamp.desc(), start=2, stop=4) == [4, 3, 2]
    assert rowids(score=0.5) == [5, 7]
    assert rowids(score=0.0) == [2, 5, 7, 9]
    assert rowids(score=0.0, limit=2) == [2, 5]
    values = queries.getMetricData(conn, metric.uid, fields=[schema.metric_data.c.metric_value],
                                   start=1, stop=2).all()
    assert [tuple(v) for v in values] == [(0.0,), (1.0,)]
    assert queries.getProcessedMetricDataCount(conn, metric.uid) == 4
    tail = queries.getMetricDataWithRawAnomalyScoresTail(conn, metric.uid, 3)
    assert [r.rowid for r in tail] == [9, 7, 5]
    assert queries.getMetricStats(conn, metric.uid) == {"min": 0.0, "max": 9.0}


def test_metric_stats_need_data(conn: sa.Connection, metric: sa.Row) -> None:
    with pytest.raises(MetricStatisticsNotReadyError):
        queries.getMetricStats(conn, metric.uid)


def test_unprocessed_count_covers_active_models_only(conn: sa.Connection) -> None:
    before = queries.getUnprocessedModelDataCount(conn)
    conn.rollback()
    active = queries.addMetric(conn, datasource="custom", name=_name(),
                               status=MetricStatus.ACTIVE)
    idle = queries.addMetric(conn, datasource="custom", name=_name())
    _add_samples(conn, active.uid, [1.0, 2.0, 3.0])
    _add_samples(conn, idle.uid, [1.0, 2.0])
    queries.updateMetricDataColumns(conn, {"uid": active.uid, "rowid": 1},
                                    {"anomaly_score": 0.2})
    assert queries.getUnprocessedModelDataCount(conn) - before == 2
    models = {r.uid for r in queries.getAllModels(conn)}
    assert active.uid in models and idle.uid not in models


def test_delete_model_clears_results_and_delete_metric_cascades(conn: sa.Connection,
                                                                metric: sa.Row) -> None:
    _add_samples(conn, metric.uid, [1.0, 2.0, 3.0])
    queries.setMetricStatus(conn, metric.uid, MetricStatus.ACTIVE)
    queries.updateMetricColumns(conn, metric.uid, {"model_params": "{}"})
    queries.updateMetricDataColumns(conn, {"uid": metric.uid, "rowid": 2},
                                    {"anomaly_score": 0.3, "raw_anomaly_score": 0.4,
                                     "display_value": 1,
                                     "multi_step_best_predictions": "{}"})
    queries.deleteModel(conn, metric.uid)
    row = queries.getMetric(conn, metric.uid)
    assert (row.status, row.model_params) == (MetricStatus.UNMONITORED, None)
    data = queries.getMetricData(conn, metric.uid, rowid=2).one()
    assert (data.anomaly_score, data.raw_anomaly_score, data.display_value,
            data.multi_step_best_predictions) == (None, None, None, None)
    queries.deleteMetric(conn, metric.uid)
    with pytest.raises(ObjectNotFoundError):
        queries.getMetric(conn, metric.uid)
    assert queries.getMetricDataCount(conn, metric.uid) == 0  # FK cascade removed the rows


def test_lock_operation_exclusive_blocks_a_second_locker(sql_engine: sa.Engine) -> None:
    acquired = threading.Event()
    with sql_engine.connect() as holder, holder.begin():
        queries.lockOperationExclusive(holder, queries.OperationLock.METRICS)

        def second() -> None:
            with sql_engine.connect() as other, other.begin():
                queries.lockOperationExclusive(other, queries.OperationLock.METRICS)
                acquired.set()

        thread = threading.Thread(target=second)
        thread.start()
        assert not acquired.wait(0.5)  # blocked while the holder's transaction is open
    thread.join(10)
    assert acquired.is_set()
    with sql_engine.connect() as conn, conn.begin():
        with pytest.raises(ObjectNotFoundError, match="no_such_lock"):
            queries.lockOperationExclusive(conn, "no_such_lock")


def test_write_on_a_killed_connection_is_retried(sql_engine: sa.Engine,
                                                 metric: sa.Row) -> None:
    with sql_engine.connect() as conn:
        connection_id = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one()
        conn.commit()
        with sql_engine.connect() as killer:
            killer.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
        # The write owns its transaction, so it is retried on a fresh connection.
        rows = queries.addMetricData(conn, metric.uid, [(1.0, T0)])
        assert [r["rowid"] for r in rows] == [1]
        assert conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one() != connection_id
        conn.rollback()
    with sql_engine.connect() as check:
        assert queries.getMetricDataCount(check, metric.uid) == 1


def test_instance_queries(conn: sa.Connection) -> None:
    server = f"srv-{uuid.uuid4().hex[:8]}"
    first = queries.addMetric(conn, datasource="custom", name=f"ns/{server}/cpu", server=server,
                              status=MetricStatus.ACTIVE, parameters='{"p": 1}')
    queries.addMetric(conn, datasource="custom", name=f"ns/{server}/mem", server=server,
                      status=MetricStatus.ERROR, message="bad")
    assert queries.getMetricCountForServer(conn, server) == 2
    assert first.uid in queries.listMetricIDsForInstance(conn, server)
    assert {r.uid for r in queries.getAllMetricsForServer(conn, server)} >= {first.uid}
    instance = next(i for i in queries.getInstances(conn) if i["server"] == server)
    assert instance["status"] == MetricStatus.ACTIVE | MetricStatus.ERROR
    assert instance["namespace"] == f"ns/{server}"
    assert instance["message"] == "bad"
    conn.rollback()
    queries.saveMetricInstanceStatus(conn, server, "running", T0)
    queries.saveMetricInstanceStatus(conn, server, "running", T0 + timedelta(minutes=1))
    queries.saveMetricInstanceStatus(conn, server, "stopped", T0 + timedelta(minutes=2))
    history = queries.getInstanceStatusHistory(conn, server)
    assert [(h.timestamp, h.status) for h in history] == [
        (T0, "running"), (T0 + timedelta(minutes=2), "stopped")]


def test_write_after_a_read_joins_the_auto_begun_transaction(sql_engine: sa.Engine,
                                                             metric: sa.Row) -> None:
    with sql_engine.connect() as conn, sql_engine.connect() as observer:
        queries.getMetric(conn, metric.uid)  # auto-begins a transaction on conn
        queries.setMetricStatus(conn, metric.uid, MetricStatus.ACTIVE)
        assert queries.getMetric(observer, metric.uid).status == MetricStatus.UNMONITORED
        observer.rollback()
        conn.commit()  # the caller owns the transaction, so the caller commits
        assert queries.getMetric(observer, metric.uid).status == MetricStatus.ACTIVE


def test_run_in_transaction_retries_the_whole_transaction(sql_engine: sa.Engine,
                                                          metric: sa.Row) -> None:
    attempts: list[int] = []

    def store_two_batches(conn: sa.Connection, uid: str) -> list[int]:
        attempts.append(conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar_one())
        rows = queries.addMetricData(conn, uid, [(1.0, T0)])
        if len(attempts) == 1:  # lose the connection mid-transaction, after the first write
            with sql_engine.connect() as killer:
                killer.exec_driver_sql(f"KILL CONNECTION {int(attempts[0])}")
        rows += queries.addMetricData(conn, uid, [(2.0, T0 + timedelta(minutes=5))])
        return [row["rowid"] for row in rows]

    assert runInTransaction(sql_engine, store_two_batches, metric.uid) == [1, 2]
    assert len(attempts) == 2
    with sql_engine.connect() as conn:
        assert [r.metric_value for r in queries.getMetricData(conn, metric.uid)] == [1.0, 2.0]
        assert queries.getMetric(conn, metric.uid).last_rowid == 2


def test_metric_listings_and_display_value_ranking(conn: sa.Connection) -> None:
    custom = queries.addMetric(conn, datasource="custom", name=_name())
    other = queries.addMetric(conn, datasource="other", name=_name())
    assert custom.uid in {r.uid for r in queries.getCustomMetrics(conn)}
    assert other.uid not in {r.uid for r in queries.getCustomMetrics(conn)}
    assert {custom.uid, other.uid} <= {r.uid for r in queries.getAllMetrics(conn)}
    conn.rollback()
    # Newest samples of the whole table (far future), so the 24-hour window is ours.
    newest = datetime(2099, 1, 1, 12, 0) + timedelta(hours=uuid.uuid4().int % 1000)
    _add_samples(conn, custom.uid, [1.0, 2.0, 3.0], start=newest - timedelta(hours=2))
    _add_samples(conn, other.uid, [1.0], start=newest)
    _add_samples(conn, other.uid, [1.0], start=newest - timedelta(hours=30))  # outside
    for uid, rowid, display in [(custom.uid, 1, 3), (custom.uid, 2, 5), (other.uid, 1, 2),
                                (other.uid, 2, 100)]:
        queries.updateMetricDataColumns(conn, {"uid": uid, "rowid": rowid},
                                        {"display_value": display})
    ranking = queries.getMetricIdsSortedByDisplayValue(conn, 24)
    # 24 hours / 24 bars = one-hour bars: custom's rows 1 and 2 (10 min apart) share a bar.
    assert int(ranking[custom.uid]) == 5
    assert int(ranking[other.uid]) == 2
    with pytest.raises(ValueError, match="period"):
        queries.getMetricIdsSortedByDisplayValue(conn, "24; DROP TABLE metric")


@dataclass
class Scores:
    """The fields of a runner's row result that write_unscored_results reads."""
    rowid: int
    raw_anomaly_score: float
    anomaly_score: float
    display_value: int
    multi_step_best_predictions: dict | None


def test_write_unscored_results_stores_exact_values_once(conn: sa.Connection,
                                                          metric: sa.Row) -> None:
    """One statement scores the rows without a raw score, each double exactly as given
    (awkward decimals, tiny and huge exponents), predictions as JSON or NULL; a row scored
    already keeps its values."""
    from htmengine.repository.streaming_queries import write_unscored_results

    _add_samples(conn, metric.uid, [1.0, 2.0, 3.0, 4.0])
    awkward = [0.1 + 0.2, 1e-05, 1.2345678901234567e-300, 0.9999999999999999]
    write_unscored_results(conn, metric.uid, [Scores(1, 0.5, 0.25, 1, None)])
    write_unscored_results(conn, metric.uid, [
        Scores(rowid, raw, 1 / 3 + rowid, rowid * 10, {"1": rowid} if rowid % 2 else None)
        for rowid, raw in zip(range(1, 5), awkward, strict=True)])
    rows = list(queries.getMetricData(conn, metric.uid))
    assert [(r.raw_anomaly_score, r.anomaly_score, r.display_value)
            for r in rows] == [(0.5, 0.25, 1)] + [
        (raw, 1 / 3 + rowid, rowid * 10) for rowid, raw in zip(range(2, 5), awkward[1:],
                                                              strict=True)]
    assert [r.multi_step_best_predictions for r in rows] == [None, None, '{"1": 3}', None]


def test_write_unscored_results_scores_a_batch_longer_than_one_statement(
        conn: sa.Connection, metric: sa.Row) -> None:
    """A backlog batch of more rows than one UPDATE carries is stored whole, each row its own
    values."""
    from htmengine.repository.streaming_queries import _UNSCORED_CHUNK, write_unscored_results

    count = _UNSCORED_CHUNK * 2 + 7
    _add_samples(conn, metric.uid, [float(i) for i in range(count)])
    write_unscored_results(conn, metric.uid, [
        Scores(rowid, rowid / count, 1 / rowid, rowid, None) for rowid in range(1, count + 1)])
    rows = list(queries.getMetricData(conn, metric.uid))
    assert [(r.rowid, r.raw_anomaly_score, r.anomaly_score, r.display_value) for r in rows] == [
        (rowid, rowid / count, 1 / rowid, rowid) for rowid in range(1, count + 1)]
