"""Accessors for htmengine's configuration files; each call returns a fresh `Config` so that
environment overrides and override files changed since the last call are honoured."""

from __future__ import annotations

import os
from pathlib import Path

from htmengine.exceptions import ApplicationNotConfiguredError, HTMEngineError
from nta_utils.config import Config
from nta_utils.config_location import application_config_dir
from nta_utils.errors import ConfigError

APPLICATION_CONF = "application.conf"
MODEL_SWAPPER_CONF = "model-swapper.conf"
MODEL_CHECKPOINT_CONF = "model-checkpoint.conf"
RABBITMQ_CONF = "rabbitmq.conf"


class InvalidCheckpointRootError(HTMEngineError, ValueError):
    """model-checkpoint.conf [storage] root does not expand to an absolute path."""


def config_dir() -> str:
    """The configuration directory, $APPLICATION_CONFIG_PATH (unset: the running application's
    in a checkout, see nta_utils.config_location); ApplicationNotConfiguredError if neither."""
    try:
        return application_config_dir()
    except ConfigError as error:
        raise ApplicationNotConfiguredError(str(error)) from error


def _load(configName: str) -> Config:
    return Config(configName, config_dir())


def app_config() -> Config:
    """application.conf (repository, metric listener/storer, anomaly likelihood settings)."""
    return _load(APPLICATION_CONF)


def swapper_config() -> Config:
    """model-swapper.conf (interface bus queue names, runner and scheduler settings)."""
    return _load(MODEL_SWAPPER_CONF)


def checkpoint_config() -> Config:
    """model-checkpoint.conf (checkpoint storage root)."""
    return _load(MODEL_CHECKPOINT_CONF)


def rabbitmq_config() -> Config:
    """rabbitmq.conf (broker host, port, virtual host, credentials)."""
    return _load(RABBITMQ_CONF)


def checkpoint_root() -> Path:
    """Root of the model checkpoint archive: model-checkpoint.conf [storage] root with
    environment variables (and ~) expanded; it must be absolute."""
    raw = checkpoint_config().get("storage", "root")
    expanded = os.path.expanduser(os.path.expandvars(raw))
    if "$" in expanded:
        raise InvalidCheckpointRootError(
            f"model-checkpoint.conf [storage] root {raw!r} refers to an unset environment "
            f"variable (expanded to {expanded!r})")
    path = Path(expanded)
    if not path.is_absolute():
        raise InvalidCheckpointRootError(
            f"model-checkpoint.conf [storage] root must be an absolute path, got {raw!r} "
            f"(expanded to {expanded!r})")
    return path
