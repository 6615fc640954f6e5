"""The custom datasource adapter against the real MariaDB and RabbitMQ: metric life cycle,
every error path, PENDING_DATA -> model at 288 rows, export and import."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from htmengine.adapters.datasource import createDatasourceAdapter, listDatasourceNames
from htmengine.exceptions import (
    InvalidInputError,
    MetricAlreadyExists,
    MetricAlreadyMonitored,
    MetricNotMonitoredError,
    MetricStatusChangedError,
    ObjectNotFoundError,
)
from htmengine.model_swapper.messages import ModelCommand, ModelInputRow
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.repository import engineFactory, queries
from htmengine.repository.queries import MetricStatus
from htmengine.utils import jsonDecode, jsonEncode

pytestmark = pytest.mark.integration

T0 = datetime(2015, 3, 1)


def _name() -> str:
    return f"test.adapter.{uuid.uuid4().hex[:12]}"


@pytest.fixture()
def engine(migrated_db) -> sa.Engine:
    return engineFactory()


@pytest.fixture()
def adapter(engine):
    return createDatasourceAdapter("custom", engine=engine, chunkSize=200)


@pytest.fixture()
def swapper(engine_env):
    with ModelSwapperInterface() as interface:
        yield interface


def _metric(engine, uid):
    with engine.connect() as conn:
        return queries.getMetric(conn, uid)


def _addData(engine, uid, values, start=T0):
    with engine.connect() as conn:
        queries.addMetricData(conn, uid, [(v, start + timedelta(minutes=5 * i))
                                          for i, v in enumerate(values)])


def _inputItems(swapper, uid) -> list:
    items = []
    while (batch := swapper.getRequestBatch(uid)) is not None:
        batch.ack()
        items.extend(batch.objects)
    return items


def _spec(name, **modelParams):
    spec = {"datasource": "custom", "metricSpec": {"metric": name}}
    if modelParams:
        spec["modelParams"] = modelParams
    return spec


def test_factory_knows_only_custom() -> None:
    assert listDatasourceNames() == ("custom",)
    with pytest.raises(InvalidInputError, match="unknown datasource 'cloudwatch'"):
        createDatasourceAdapter("cloudwatch")


def test_create_and_delete_metric(adapter, engine) -> None:
    name = _name()
    uid = adapter.createMetric(name)
    metric = _metric(engine, uid)
    assert (metric.name, metric.datasource, metric.status, metric.server) == (
        name, "custom", MetricStatus.UNMONITORED, name)
    with pytest.raises(MetricAlreadyExists) as excinfo:
        adapter.createMetric(name)
    assert excinfo.value.uid == uid
    for bad in ("", "   ", None, "x" * 256):
        with pytest.raises(InvalidInputError, match="metric name"):
            adapter.createMetric(bad)
    adapter.deleteMetricByName(name)
    with pytest.raises(ObjectNotFoundError):
        _metric(engine, uid)
    with pytest.raises(ObjectNotFoundError):
        adapter.deleteMetricByName(name)


@pytest.mark.parametrize("spec, fragment", [
    ({"datasource": "custom", "metricSpec": {"metric": "m"}, "modelParams": {"min": "low",
                                                                             "max": 1}},
     "modelSpec.modelParams.min: 'low' is not of type 'number'"),
    ({"datasource": "custom", "metricSpec": {"metric": "m"}, "modelParams": {"min": 1}},
     "min given without max"),
    ({"datasource": "custom", "metricSpec": {"metric": "m"}, "modelParams": {"max": 1}},
     "max given without min"),
    ({"datasource": "custom", "metricSpec": {"metric": "m"}, "modelParams": {"min": 5,
                                                                             "max": 5}},
     "must be greater than min"),
    ({"datasource": "custom", "metricSpec": {"metric": "m"}, "modelParams": {"mni": 1}},
     "modelSpec.modelParams: .*'mni' was unexpected"),
    ({"metricSpec": {"metric": "m"}}, "'datasource' is a required property"),
    ({"datasource": "custom"}, "'metricSpec' is a required property"),
    ({"datasource": "custom", "metricSpec": {}}, "modelSpec.metricSpec: must name the metric"),
    ({"datasource": "custom", "metricSpec": {"metric": "m", "uid": "u"}},
     "exactly one of 'metric'"),
    ({"datasource": "custom", "metricSpec": {"metric": "m", "colour": "red"}},
     "modelSpec.metricSpec: .*'colour' was unexpected"),
    ({"datasource": "custom", "metricSpec": {"metric": 5}},
     "modelSpec.metricSpec.metric: 5 is not of type 'string'"),
    ({"datasource": "cloudwatch", "metricSpec": {"metric": "m"}},
     "modelSpec.datasource must be 'custom'"),
    ({"datasource": "custom", "metricSpec": {"metric": "m"}, "modelParams": {},
      "completeModelParams": {"modelConfig": {}, "inferenceArgs": {},
                              "timestampFieldName": "t", "valueFieldName": "v"}},
     "either modelParams or completeModelParams"),
])
def test_invalid_specs_are_rejected_naming_the_field(adapter, engine, spec, fragment) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        adapter.monitorMetric(spec)
    with engine.connect() as conn:   # nothing was created
        with pytest.raises(ObjectNotFoundError):
            queries.getCustomMetricByName(conn, "m")


def test_unknown_metric_uid(adapter) -> None:
    missing = uuid.uuid4().hex
    with pytest.raises(ObjectNotFoundError, match=missing):
        adapter.monitorMetric({"datasource": "custom", "metricSpec": {"uid": missing}})
    with pytest.raises(ObjectNotFoundError):
        adapter.unmonitorMetric(missing)
    with pytest.raises(ObjectNotFoundError):
        adapter.exportModel(missing)
    with pytest.raises(ObjectNotFoundError):
        adapter.activateModel(missing)


def test_activating_an_unmonitored_metric_says_it_is_not_monitored(adapter, engine) -> None:
    uid = adapter.createMetric(_name())
    with pytest.raises(MetricNotMonitoredError, match="not monitored"):
        adapter.activateModel(uid)
    assert _metric(engine, uid).status == MetricStatus.UNMONITORED


def test_monitor_with_min_max_defines_model_and_sends_backlog(adapter, engine,
                                                              swapper) -> None:
    name = _name()
    uid = adapter.createMetric(name)
    _addData(engine, uid, range(250))
    spec = {"datasource": "custom",
            "metricSpec": {"uid": uid, "unit": "Count", "resource": "web1"},
            "modelParams": {"min": 0, "max": 300, "minResolution": 0.5}}
    assert adapter.monitorMetric(spec) == uid
    metric = _metric(engine, uid)
    assert metric.status == MetricStatus.CREATE_PENDING
    assert metric.server == "web1"
    # the stored spec names the metric by name (canonical form)
    assert json.loads(metric.parameters)["metricSpec"] == {"metric": name, "unit": "Count",
                                                           "resource": "web1"}
    items = _inputItems(swapper, uid)
    assert isinstance(items[0], ModelCommand) and items[0].method == "defineModel"
    encoder = items[0].args["modelConfig"]["modelParams"]["sensorParams"]["encoders"]["c1"]
    assert encoder["resolution"] == pytest.approx(max(0.5, 300 / 130))
    assert [i.rowID for i in items[1:] if isinstance(i, ModelInputRow)] == list(range(1, 251))
    with pytest.raises(MetricAlreadyMonitored) as excinfo:
        adapter.monitorMetric(_spec(name, min=0, max=1))
    assert excinfo.value.uid == uid


def test_monitor_without_range_estimates_it_from_288_rows(adapter, engine, swapper) -> None:
    name = _name()
    uid = adapter.createMetric(name)
    _addData(engine, uid, [10.0 + i % 50 for i in range(300)])   # values 10 .. 59
    adapter.monitorMetric(_spec(name))
    assert _metric(engine, uid).status == MetricStatus.CREATE_PENDING
    items = _inputItems(swapper, uid)
    encoder = items[0].args["modelConfig"]["modelParams"]["sensorParams"]["encoders"]["c1"]
    assert encoder["resolution"] == pytest.approx((49 * 1.4) / 130)


def test_monitor_without_data_waits_then_activates(adapter, engine, swapper) -> None:
    name = _name()
    uid = adapter.monitorMetric(_spec(name))   # creates the metric
    assert _metric(engine, uid).status == MetricStatus.PENDING_DATA
    assert not swapper.modelInputPending(uid)
    with pytest.raises(MetricAlreadyMonitored):
        adapter.monitorMetric(_spec(name))
    _addData(engine, uid, [7.0] * 288)           # flat data: max = min + 1
    assert adapter.activateModel(uid) is True
    assert _metric(engine, uid).status == MetricStatus.CREATE_PENDING
    items = _inputItems(swapper, uid)
    encoder = items[0].args["modelConfig"]["modelParams"]["sensorParams"]["encoders"]["c1"]
    assert encoder["resolution"] == pytest.approx(max(0.001, 1.4 / 130))
    assert len([i for i in items if isinstance(i, ModelInputRow)]) == 288
    assert adapter.activateModel(uid) is False    # already has its model: no-op


def test_activate_requires_pending_data(adapter, engine) -> None:
    uid = adapter.createMetric(_name())
    _addData(engine, uid, range(300))
    with pytest.raises(MetricStatusChangedError, match="not PENDING_DATA"):
        adapter.activateModel(uid)


def test_unmonitor_clears_the_model(adapter, engine, swapper) -> None:
    name = _name()
    uid = adapter.monitorMetric(_spec(name, min=0, max=10))
    _inputItems(swapper, uid)
    adapter.unmonitorMetric(uid)
    metric = _metric(engine, uid)
    assert (metric.status, metric.parameters, metric.model_params) == (
        MetricStatus.UNMONITORED, None, None)
    items = _inputItems(swapper, uid)
    assert [(type(i), i.method) for i in items] == [(ModelCommand, "deleteModel")]
    adapter.monitorMetric(_spec(name, min=0, max=10))   # monitoring again is allowed
    assert _metric(engine, uid).status == MetricStatus.CREATE_PENDING


def test_export_then_import_recreates_the_model(adapter, engine, swapper) -> None:
    name = _name()
    uid = adapter.createMetric(name)
    start = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) - timedelta(hours=41)
    _addData(engine, uid, [float(i) for i in range(20 * 24)], start=start)   # 40 hours
    adapter.monitorMetric(_spec(name, min=0, max=500))
    _inputItems(swapper, uid)
    exported = adapter.exportModel(uid)
    assert exported["metricSpec"] == {"metric": name}
    assert exported["modelParams"] == {"min": 0, "max": 500}
    newest = start + timedelta(minutes=5 * (20 * 24 - 1))
    assert exported["data"][-1] == (479.0, newest)            # (value, datetime) as the original
    assert len(exported["data"]) == 20 * 24   # 5-minute rows: 40 hours, all within 14 days
    roundTrip = jsonDecode(jsonEncode(exported))               # JSON-serialisable this way
    assert roundTrip["data"][-1] == [479.0, str(newest)]
    adapter.deleteMetricByName(name)
    newUid = adapter.importModel(roundTrip)
    assert newUid != uid
    metric = _metric(engine, newUid)
    assert (metric.name, metric.status) == (name, MetricStatus.CREATE_PENDING)
    with engine.connect() as conn:
        assert queries.getMetricDataCount(conn, newUid) == 20 * 24
    assert adapter.exportModel(newUid)["data"] == exported["data"]
    # importing again leaves a monitored metric alone
    assert adapter.importModel(exported) == newUid
    with engine.connect() as conn:
        assert queries.getMetricDataCount(conn, newUid) == 20 * 24


def test_export_keeps_only_the_last_14_days_from_now(adapter, engine) -> None:
    uid = adapter.createMetric(_name())
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with engine.connect() as conn:   # day d is (29 - d) and a half days old
        queries.addMetricData(conn, uid, [(float(day), now - timedelta(days=29 - day, hours=12))
                                          for day in range(30)])
    exported = adapter.exportModel(uid)
    assert [value for value, _ in exported["data"]] == [float(d) for d in range(16, 30)]


def test_import_rejects_malformed_data(adapter) -> None:
    spec = _spec(_name(), min=0, max=1)
    with pytest.raises(InvalidInputError, match=r"spec.data\[1\]"):
        adapter.importModel({**spec, "data": [[1.0, "2015-01-01 00:00:00"], [2.0]]})
    with pytest.raises(InvalidInputError, match=r"spec.data\[0\] timestamp"):
        adapter.importModel({**spec, "data": [[1.0, "yesterday"]]})
