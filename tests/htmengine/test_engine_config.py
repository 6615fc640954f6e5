"""htmengine.config helpers: fresh Config per call, unset APPLICATION_CONFIG_PATH, checkpoint
root expansion and validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from htmengine import config as engine_config
from htmengine.exceptions import ApplicationNotConfiguredError
from nta_utils import config_location
from nta_utils.config import Config

REPO_CONF = Path(__file__).resolve().parents[2] / "conf"
ROOT_VAR = Config.getEnvVarOverrideName("model-checkpoint.conf", "storage", "root")


@pytest.fixture
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped conf/ set as APPLICATION_CONFIG_PATH, with no overrides."""
    target = tmp_path / "conf"
    shutil.copytree(REPO_CONF, target, ignore=shutil.ignore_patterns("overrides"))
    monkeypatch.setenv("APPLICATION_CONFIG_PATH", str(target))
    monkeypatch.delenv(ROOT_VAR, raising=False)
    monkeypatch.delenv(Config.getEnvVarOverrideName("application.conf", "repository", "db"),
                       raising=False)
    return target


@pytest.mark.parametrize("helper,file_name,section", [
    (engine_config.app_config, "application.conf", "repository"),
    (engine_config.swapper_config, "model-swapper.conf", "interface_bus"),
    (engine_config.checkpoint_config, "model-checkpoint.conf", "storage"),
    (engine_config.rabbitmq_config, "rabbitmq.conf", "connection"),
])
def test_helpers_load_their_file(helper, file_name: str, section: str, conf_dir: Path) -> None:
    config = helper()
    assert config.configName == file_name
    assert config.has_section(section)
    assert helper() is not config  # fresh object per call


def test_each_call_sees_current_overrides(conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert engine_config.app_config().get("repository", "db") == "htmengine"
    monkeypatch.setenv(Config.getEnvVarOverrideName("application.conf", "repository", "db"),
                       "other_db")
    assert engine_config.app_config().get("repository", "db") == "other_db"


def test_unset_application_config_path_outside_a_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPLICATION_CONFIG_PATH", raising=False)
    monkeypatch.setattr(config_location, "SKELETON_CONF_DIR", tmp_path / "no_skeleton")
    with pytest.raises(ApplicationNotConfiguredError, match="APPLICATION_CONFIG_PATH"):
        engine_config.app_config()
    with pytest.raises(ApplicationNotConfiguredError):
        engine_config.checkpoint_root()


def test_checkpoint_root_expands_environment(conf_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert engine_config.checkpoint_root() == tmp_path / "home" / "htmengine_model_checkpoints"


@pytest.mark.parametrize("value,needle", [
    ("relative/checkpoints", "absolute"),
    ("${HTMENGINE_SURELY_UNSET_VAR}/checkpoints", "unset environment variable"),
])
def test_checkpoint_root_must_be_absolute(value: str, needle: str, conf_dir: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTMENGINE_SURELY_UNSET_VAR", raising=False)
    monkeypatch.setenv(ROOT_VAR, value)
    with pytest.raises(engine_config.InvalidCheckpointRootError, match=needle) as info:
        engine_config.checkpoint_root()
    assert value in str(info.value)
