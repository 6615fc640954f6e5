"""The original engine's module-level API kept for user scripts: package-level repository
queries, htmengineerrno, htmengine.utils, getExtendedLogger, LoggingSupport, APP_CONFIG and
the original model-spec error texts."""

from __future__ import annotations

import logging
from datetime import datetime

import pytest

import htmengine
from htmengine import htmengineerrno, repository
from htmengine.exceptions import ApplicationNotConfiguredError, InvalidInputError
from htmengine.htmengine_logging import getExtendedLogger
from htmengine.model_swapper.errors import ModelSwapperStatus
from htmengine.pipeline import scalar_metric_utils as smu
from htmengine.repository import queries
from htmengine.utils import jsonDecode, jsonEncode, roundUpDatetime, validate
from nta_utils import config_location
from nta_utils.logging_support_raw import LoggingSupport

ORIGINAL_REPOSITORY_NAMES = (
    "addMetric addMetricData deleteMetric deleteModel getCustomMetricByName getCustomMetrics "
    "getInstances getInstanceStatusHistory getAllMetrics getAllMetricsForServer getAllModels "
    "getMetric getMetricWithSharedLock getMetricWithUpdateLock getMetricCountForServer "
    "getMetricData getMetricDataCount getProcessedMetricDataCount "
    "getMetricDataWithRawAnomalyScoresTail getMetricIdsSortedByDisplayValue getMetricStats "
    "getUnprocessedModelDataCount listMetricIDsForInstance saveMetricInstanceStatus "
    "setMetricCollectorError setMetricLastTimestamp setMetricStatus updateMetricColumns "
    "updateMetricColumnsForRefStatus updateMetricDataColumns lockOperationExclusive "
    "OperationLock retryOnTransientErrors engineFactory getUnaffiliatedEngine").split()


@pytest.mark.parametrize("name", ORIGINAL_REPOSITORY_NAMES)
def test_repository_package_exports_the_original_names(name: str) -> None:
    exported = getattr(repository, name)
    if hasattr(queries, name):
        assert exported is getattr(queries, name)


def test_htmengineerrno_is_the_swappers_status_codes() -> None:
    assert (htmengineerrno.SUCCESS, htmengineerrno.ERR, htmengineerrno.ERR_MODEL_ALREADY_EXISTS,
            htmengineerrno.ERR_NO_SUCH_MODEL, htmengineerrno.ERR_INVALID_ARG) == (0, 1, 2, 3, 4)
    for status in ModelSwapperStatus:
        assert getattr(htmengineerrno, status.name) == status


def test_json_helpers_and_validate() -> None:
    dt = datetime(2015, 3, 1, 12, 30)
    text = jsonEncode({"data": [(1.5, dt)], "gen": (i for i in range(2))})
    assert jsonDecode(text) == {"data": [[1.5, "2015-03-01 12:30:00"]], "gen": [0, 1]}
    validate({"a": 1}, {"type": "object"})
    with pytest.raises(ValueError, match=r"document\.a: 'x' is not of type 'number'"):
        validate({"a": "x"}, {"type": "object", "properties": {"a": {"type": "number"}}})
    assert roundUpDatetime(datetime(2015, 1, 1, 1, 51, 3), 300) == datetime(2015, 1, 1, 1, 55)
    assert roundUpDatetime(datetime(2015, 1, 1, 1, 55), 300) == datetime(2015, 1, 1, 1, 55)


def test_extended_logger_prefixes_messages(caplog: pytest.LogCaptureFixture) -> None:
    LoggingSupport.initTestApp()
    log = getExtendedLogger("test.extended")
    assert getExtendedLogger("test.extended") is log
    log.setLogPrefix("<t1> ")
    with caplog.at_level(logging.INFO, logger="test.extended"):
        log.info("hello %s", "you")
    assert caplog.records[-1].getMessage() == "<t1> hello you"


def test_app_config_is_loaded_lazily(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("APPLICATION_CONFIG_PATH", raising=False)
    # outside a checkout (no skeleton_app/conf to fall back to) the variable is required
    monkeypatch.setattr(config_location, "SKELETON_CONF_DIR", tmp_path / "no_skeleton")
    with pytest.raises(ApplicationNotConfiguredError):
        htmengine.APP_CONFIG  # noqa: B018
    (tmp_path / "application.conf").write_text("[lazy_test]\nvalue = x\n")
    monkeypatch.setenv("APPLICATION_CONFIG_PATH", str(tmp_path))
    assert htmengine.APP_CONFIG.get("lazy_test", "value") == "x"
    with pytest.raises(AttributeError):
        htmengine.NO_SUCH_NAME  # noqa: B018


@pytest.mark.parametrize("spec, message", [
    ({"modelParams": {}, "completeModelParams": {}}, smu._MUTEX_MODEL_SPEC_MSG),
    ({"completeModelParams": {"modelConfig": {}}}, smu._NO_INFERENCE_ARGS_MSG),
    ({"completeModelParams": {"inferenceArgs": {}}}, smu._NO_TIMESTAMP_FIELD_NAME_MSG),
    ({"completeModelParams": {"inferenceArgs": {}, "timestampFieldName": "t"}},
     smu._NO_VALUE_FIELD_NAME_MSG),
    ({"completeModelParams": {"inferenceArgs": {"predictedField": "a"},
                              "timestampFieldName": "t", "valueFieldName": "b"}},
     smu._INCONSISTENT_PREDICTED_FIELD_NAME_MSG),
    ({"modelParams": {"min": 1}}, "min and max params must both be None or non-None"),
])
def test_model_spec_errors_start_with_the_original_text(spec, message) -> None:
    with pytest.raises(InvalidInputError) as info:
        smu.checkModelParamsSpec(spec)
    assert isinstance(info.value, ValueError)
    assert info.value.args[0].startswith(message)
