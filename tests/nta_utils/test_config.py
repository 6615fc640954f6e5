"""nta_utils.config.Config: file layering, environment overrides and error messages."""

from __future__ import annotations

import configparser
import os
from pathlib import Path

import pytest

from nta_utils import config_location
from nta_utils.config import Config
from nta_utils.errors import ConfigError

REPO_CONF = Path(__file__).resolve().parents[2] / "conf"

BASE_TEXT = """\
[bus]
queue = base.queue
port = 2003
ratio = 0.25
enabled = false
pattern = 100%% literal %(name)s

[only_base]
kept = yes
"""


@pytest.fixture
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory holding model-swapper.conf; no env overrides for it are set."""
    (tmp_path / "model-swapper.conf").write_text(BASE_TEXT)
    for name in ("QUEUE", "PORT", "RATIO", "ENABLED", "PATTERN", "EXTRA"):
        monkeypatch.delenv(f"_NTA_UTILS_CONFIG__MODEL_SWAPPER__BUS__{name}", raising=False)
    return tmp_path


def test_reads_base_file_without_interpolation(conf_dir: Path) -> None:
    config = Config("model-swapper.conf", str(conf_dir))
    assert config.get("bus", "queue") == "base.queue"
    assert config.getint("bus", "port") == 2003
    assert config.getfloat("bus", "ratio") == 0.25
    assert config.getboolean("bus", "enabled") is False
    # '%' is literal: no interpolation
    assert config.get("bus", "pattern") == "100%% literal %(name)s"
    assert config.configName == "model-swapper.conf"


def test_base_dir_defaults_to_application_config_path(
        conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLICATION_CONFIG_PATH", str(conf_dir))
    assert Config("model-swapper.conf").get("bus", "queue") == "base.queue"


def test_unset_application_config_path_is_named_outside_a_checkout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPLICATION_CONFIG_PATH", raising=False)
    monkeypatch.setattr(config_location, "SKELETON_CONF_DIR", tmp_path / "no_skeleton")
    with pytest.raises(ConfigError, match="APPLICATION_CONFIG_PATH"):
        Config("application.conf")


def test_unset_application_config_path_uses_the_skeleton_conf_and_says_so_once(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("APPLICATION_CONFIG_PATH", raising=False)
    monkeypatch.setattr(config_location, "_announced", False)
    monkeypatch.setattr(config_location, "ENGINE_PID_FILE", Path("/nonexistent/pid"))
    first = Config("application.conf")
    Config("rabbitmq.conf")
    assert Path(first.baseConfigDir) == config_location.SKELETON_CONF_DIR
    assert first.get("repository", "db") in ("skeleton", os.environ.get(
        Config.getEnvVarOverrideName("application.conf", "repository", "db")))
    err = capsys.readouterr().err
    assert err.count("APPLICATION_CONFIG_PATH is not set: using") == 1
    assert "skeleton_app/conf" in err


def test_unset_application_config_path_follows_the_running_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only `make run-engine` runs (its supervisord pid is alive): conf/ is used."""
    monkeypatch.delenv("APPLICATION_CONFIG_PATH", raising=False)
    engine_pid, skeleton_pid = tmp_path / "engine.pid", tmp_path / "skeleton.pid"
    engine_pid.write_text(str(os.getpid()))
    monkeypatch.setattr(config_location, "ENGINE_PID_FILE", engine_pid)
    monkeypatch.setattr(config_location, "SKELETON_PID_FILE", skeleton_pid)
    assert config_location.default_config_dir() == config_location.ENGINE_CONF_DIR
    skeleton_pid.write_text(str(os.getpid()))
    assert config_location.default_config_dir() == config_location.SKELETON_CONF_DIR


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="absent.conf") as info:
        Config("absent.conf", str(tmp_path))
    assert str(tmp_path) in str(info.value)


def test_overrides_folder_is_layered_on_top(conf_dir: Path) -> None:
    (conf_dir / "overrides").mkdir()
    (conf_dir / "overrides" / "model-swapper.conf").write_text(
        "[bus]\nqueue = override.queue\nextra = added\n\n[new_section]\nx = 1\n")
    config = Config("model-swapper.conf", str(conf_dir))
    assert config.get("bus", "queue") == "override.queue"
    assert config.get("bus", "extra") == "added"
    assert config.getint("bus", "port") == 2003            # untouched option survives
    assert config.get("only_base", "kept") == "yes"         # untouched section survives
    assert config.getint("new_section", "x") == 1


def test_env_override_applies_to_existing_options(
        conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_NTA_UTILS_CONFIG__MODEL_SWAPPER__BUS__QUEUE", "env.queue")
    monkeypatch.setenv("_NTA_UTILS_CONFIG__MODEL_SWAPPER__BUS__PORT", "9999")
    monkeypatch.setenv("_NTA_UTILS_CONFIG__MODEL_SWAPPER__BUS__RATIO", "0.5")
    monkeypatch.setenv("_NTA_UTILS_CONFIG__MODEL_SWAPPER__BUS__ENABLED", "true")
    monkeypatch.setenv("_NTA_UTILS_CONFIG__MODEL_SWAPPER__BUS__EXTRA", "not in file")
    config = Config("model-swapper.conf", str(conf_dir))
    assert config.get("bus", "queue") == "env.queue"
    assert config.getint("bus", "port") == 9999
    assert config.getfloat("bus", "ratio") == 0.5
    assert config.getboolean("bus", "enabled") is True
    assert config["bus"]["queue"] == "env.queue"
    assert config["bus"].getint("port") == 9999
    assert dict(config["bus"])["ratio"] == "0.5"
    assert dict(config.items("bus"))["port"] == "9999"
    # overrides only replace options that exist in the files
    assert not config.has_option("bus", "extra")
    with pytest.raises(ConfigError):
        config.get("bus", "extra")


def test_env_override_beats_overrides_folder(
        conf_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (conf_dir / "overrides").mkdir()
    (conf_dir / "overrides" / "model-swapper.conf").write_text("[bus]\nqueue = file.queue\n")
    monkeypatch.setenv("_NTA_UTILS_CONFIG__MODEL_SWAPPER__BUS__QUEUE", "env.queue")
    assert Config("model-swapper.conf", str(conf_dir)).get("bus", "queue") == "env.queue"


def test_env_override_name() -> None:
    assert Config.getEnvVarOverrideName("model-swapper.conf", "interface_bus",
                                        "results_queue") == \
        "_NTA_UTILS_CONFIG__MODEL_SWAPPER__INTERFACE_BUS__RESULTS_QUEUE"
    assert Config.getEnvVarOverrideName("rabbitmq.conf", "connection", "virtual_host") == \
        "_NTA_UTILS_CONFIG__RABBITMQ__CONNECTION__VIRTUAL_HOST"


def test_missing_section_names_file_section_and_option(conf_dir: Path) -> None:
    config = Config("model-swapper.conf", str(conf_dir))
    with pytest.raises(ConfigError) as info:
        config.get("no_such_section", "some_option")
    message = str(info.value)
    assert "model-swapper.conf" in message
    assert "no_such_section" in message
    assert "some_option" in message
    # still a configparser error, so fallback= and configparser-style handlers work
    assert isinstance(info.value, configparser.NoSectionError)
    assert config.getint("no_such_section", "some_option", fallback=7) == 7
    with pytest.raises(ConfigError, match="no_such_section"):
        config.items("no_such_section")


def test_missing_option_names_file_section_and_option(conf_dir: Path) -> None:
    config = Config("model-swapper.conf", str(conf_dir))
    with pytest.raises(ConfigError) as info:
        config.getint("bus", "no_such_option")
    message = str(info.value)
    assert "model-swapper.conf" in message and "bus" in message
    assert "no_such_option" in message
    assert isinstance(info.value, configparser.NoOptionError)
    assert config.get("bus", "no_such_option", fallback=None) is None


def test_bad_value_names_option_and_value(conf_dir: Path) -> None:
    config = Config("model-swapper.conf", str(conf_dir))
    with pytest.raises(ConfigError, match=r"'queue'.*'bus'.*integer.*'base.queue'"):
        config.getint("bus", "queue")
    with pytest.raises(ConfigError, match="boolean"):
        config.getboolean("bus", "queue")


def test_malformed_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.conf").write_text("no section header here\n")
    with pytest.raises(ConfigError, match="broken.conf"):
        Config("broken.conf", str(tmp_path))


def test_config_name_must_be_a_plain_file_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plain file name"):
        Config("sub/application.conf", str(tmp_path))


@pytest.mark.parametrize("name,section,option", [
    ("application.conf", "repository", "db"),
    ("application.conf", "metric_listener", "plaintext_port"),
    ("model-swapper.conf", "interface_bus", "results_queue"),
    ("model-checkpoint.conf", "storage", "root"),
    ("rabbitmq.conf", "connection", "virtual_host"),
    ("rabbitmq.conf", "credentials", "user"),
])
def test_shipped_templates_load_and_take_env_overrides(
        name: str, section: str, option: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(Config.getEnvVarOverrideName(name, section, option), raising=False)
    config = Config(name, str(REPO_CONF))
    assert config.get(section, option) is not None
    monkeypatch.setenv(Config.getEnvVarOverrideName(name, section, option), "overridden")
    assert Config(name, str(REPO_CONF)).get(section, option) == "overridden"
