"""A model step that fails for one row fails that row only, through the scheduler (a slot
running the HTM model) and the anomaly service on the real broker and database: the row is
marked (no raw score, display_value -1), the rows around it are scored, the metric stays
ACTIVE and later rows are scored too."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from runtime_test_support import unique_name, wait_for

from htmengine.adapters.datasource import createDatasourceAdapter
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.pipeline.metric_streamer import MetricStreamer
from htmengine.repository import engineFactory, queries
from htmengine.repository.queries import FAILED_ROW_DISPLAY_VALUE, MetricStatus

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2015, 5, 1)
HUGE = 1.7976931348623157e308     # finite, so storable, but the encoder overflows on it


def test_a_row_the_model_fails_on_is_marked_and_the_metric_stays_active(
        engine_env, migrated_db, start_service) -> None:
    engine: sa.Engine = engineFactory()
    with ModelSwapperInterface() as swapper:
        swapper.initSchedulerNotification()
        swapper.bus.purge_queue(swapper.schedulerNotificationQueueName)
        uid = createDatasourceAdapter("custom", engine=engine).monitorMetric(
            {"datasource": "custom", "metricSpec": {"metric": unique_name("test.rowfail")},
             "modelParams": {"min": 0, "max": 100}})
        streamer = MetricStreamer(engine, swapper)
        # a row stored before ingest checked values (the storer rejects it today)
        samples = [(T0 + timedelta(minutes=5 * i), HUGE if i == 19 else float(i % 10 * 10))
                   for i in range(40)]
        streamer.storeSamples(uid, samples)
        assert streamer.streamPendingRows(uid) == 40
    services = [start_service("htmengine.model_swapper.model_scheduler_service",
                              "--num-slots", "1"),
                start_service("htmengine.runtime.anomaly_service")]

    def rows() -> list:
        for service in services:
            assert service.process.poll() is None, service.output()
        with engine.connect() as conn:
            metric = queries.getMetric(conn, uid)
            assert metric.status != MetricStatus.ERROR, metric.message
            return list(queries.getMetricData(conn, uid))

    wait_for(lambda: sum(r.raw_anomaly_score is not None for r in rows()) == 39, 120,
             interval=0.5, what="39 scored rows")
    stored = wait_for(lambda: [r for r in rows() if r.display_value == FAILED_ROW_DISPLAY_VALUE],
                      20, what="the failed row marked")
    assert [(r.rowid, r.raw_anomaly_score, r.anomaly_score) for r in stored] == [(20, None, 0.0)]
    assert "failed on row 20 only" in services[1].output()
    assert "OverflowError" in services[0].output()

    with ModelSwapperInterface() as swapper:      # the model goes on with later rows
        streamer = MetricStreamer(engine, swapper)
        streamer.storeSamples(uid, [(T0 + timedelta(minutes=5 * i), 50.0)
                                    for i in range(40, 50)])
        assert streamer.streamPendingRows(uid) == 10
    wait_for(lambda: sum(r.raw_anomaly_score is not None for r in rows()) == 49, 60,
             interval=0.5, what="the later rows scored")
    with engine.connect() as conn:
        assert queries.getMetric(conn, uid).status == MetricStatus.ACTIVE
    for service in services:
        assert service.stop() == 0, service.output()
