"""SwapperSettings: model-swapper.conf read into one typed object (required and optional
options, range checks), and the objects that take it instead of reading the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from htmengine.model_swapper.checkpoint_policy import CheckpointPolicy
from htmengine.model_swapper.errors import InvalidSwapperSettingError
from htmengine.model_swapper.model_scheduler_service import (
    configuredMemoryBudgetBytes,
    configuredNumSlots,
    defaultMemoryBudgetBytes,
    defaultNumSlots,
)
from htmengine.model_swapper.model_swapper_interface import ModelSwapperInterface
from htmengine.model_swapper.settings import SwapperSettings
from nta_utils.config import Config
from nta_utils.errors import ConfigError
from nta_utils.stub_bus import StubBroker, StubBus

REQUIRED = """[interface_bus]
results_queue = r.q
model_input_queue_prefix = in.
scheduler_notification_queue = n.q
[model_runner]
target_requests_per_checkpoint = 7
[model_scheduler]
num_slots = 3
"""


def _config(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """`text` as model-swapper.conf, without the session's environment overrides."""
    for name in list(os.environ):
        if name.startswith("_NTA_UTILS_CONFIG__MODEL_SWAPPER__"):
            monkeypatch.delenv(name)
    (tmp_path / "model-swapper.conf").write_text(text)
    return Config("model-swapper.conf", str(tmp_path))


def test_required_options_and_defaults_of_the_optional_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SwapperSettings.from_config(_config(tmp_path, REQUIRED, monkeypatch))
    assert settings == SwapperSettings(
        results_queue="r.q", model_input_queue_prefix="in.", scheduler_notification_queue="n.q",
        target_requests_per_checkpoint=7, num_slots=3)
    assert settings.replay_source == "none" and settings.memory_budget_mb == 0
    assert settings.checkpoint_policy() == CheckpointPolicy()


def test_every_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REQUIRED.replace("[model_runner]\n", "[model_runner]\nreplay_source = metric_data\n"
                             "checkpoint_every_rows = 9\ncheckpoint_max_age_seconds = 2.5\n")
            .replace("[model_scheduler]\n", "[model_scheduler]\nmemory_budget_mb = 64\n")
            .replace("n.q\n", "n.q\nmax_attempts = 4\n"))
    settings = SwapperSettings.from_config(_config(tmp_path, text, monkeypatch))
    assert (settings.replay_source, settings.max_attempts, settings.memory_budget_mb) == (
        "metric_data", 4, 64)
    assert settings.checkpoint_policy() == CheckpointPolicy(9, 2.5)
    assert configuredMemoryBudgetBytes(settings) == 64 * 2**20
    assert configuredNumSlots(settings) == 3


def test_zero_means_the_machine_defaults() -> None:
    settings = SwapperSettings(num_slots=0, memory_budget_mb=0)
    assert configuredNumSlots(settings) == defaultNumSlots()
    assert configuredMemoryBudgetBytes(settings) == defaultMemoryBudgetBytes()


def test_a_missing_required_option_names_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, REQUIRED.replace("num_slots = 3\n", ""), monkeypatch)
    with pytest.raises(ConfigError, match="num_slots"):
        SwapperSettings.from_config(config)


@pytest.mark.parametrize("change, option", [
    ({"replay_source": "files"}, "replay_source"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"target_requests_per_checkpoint": 0}, "target_requests_per_checkpoint"),
    ({"checkpoint_every_rows": 0}, "checkpoint_every_rows"),
    ({"checkpoint_max_age_seconds": -1.0}, "checkpoint_max_age_seconds"),
    ({"num_slots": -1}, "num_slots"),
    ({"memory_budget_mb": -5}, "memory_budget_mb"),
])
def test_values_out_of_range_are_refused(change: dict[str, object], option: str) -> None:
    with pytest.raises(InvalidSwapperSettingError, match=option):
        SwapperSettings(**change)  # type: ignore[arg-type]


def test_the_interface_uses_the_settings_it_is_given() -> None:
    """No configuration file is read: the queue names come from the object."""
    settings = SwapperSettings(results_queue="given.results", model_input_queue_prefix="given.in.")
    with ModelSwapperInterface(StubBus(StubBroker()), settings=settings) as swapper:
        assert swapper.settings is settings
        assert swapper.resultsQueueName == "given.results"
        assert swapper.getModelInputQueueName("m") == "given.in.m"
