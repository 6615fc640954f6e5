"""Fixtures of the model swapper's service tests."""

from __future__ import annotations

import pytest
from swapper_service_helpers import ResultCollector

from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface


@pytest.fixture()
def collector(engine_env):
    collector = ResultCollector()
    collector.purge()
    yield collector
    collector.close()


@pytest.fixture()
def swapper(engine_env):
    """A ModelSwapperInterface on the session's vhost and queue names."""
    with ModelSwapperInterface() as swapper:
        yield swapper
