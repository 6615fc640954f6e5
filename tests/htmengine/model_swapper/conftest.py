"""Fixtures of the model swapper's service tests."""

from __future__ import annotations

import pytest
from swapper_service_helpers import ResultCollector


@pytest.fixture()
def collector(engine_env):
    collector = ResultCollector()
    collector.purge()
    yield collector
    collector.close()
