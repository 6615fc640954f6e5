"""Layered INI configuration: `<base>/<name>`, then `<base>/overrides/<name>`, then per-option
environment overrides `_NTA_UTILS_CONFIG__<ROOT>__<SECTION>__<OPTION>`.

`<base>` is `$APPLICATION_CONFIG_PATH` unless given (unset: the running application's, see
`nta_utils.config_location`). Values are never interpolated (`%` is a literal). Environment
overrides only replace options that exist in the files, so the rest of the ConfigParser API
(has_option, options, sections) is unchanged.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable
from typing import Any, TypeVar

from nta_utils.config_location import (
    APPLICATION_CONFIG_PATH_ENV as APPLICATION_CONFIG_PATH_ENV,
)
from nta_utils.config_location import application_config_dir
from nta_utils.errors import ConfigError

OVERRIDES_DIR_NAME = "overrides"
ENV_OVERRIDE_PREFIX = "_NTA_UTILS_CONFIG__"

_T = TypeVar("_T")
_UNSET: Any = object()


class ConfigSectionNotFoundError(ConfigError, configparser.NoSectionError):
    """A section is missing from a configuration file (also a configparser.NoSectionError,
    so `fallback=` and code catching configparser errors keep working)."""

    def __init__(self, configName: str, section: str, option: str | None = None) -> None:
        detail = f" (looking up option {option!r})" if option is not None else ""
        self.message = f"Configuration {configName!r} has no section {section!r}{detail}"
        ConfigError.__init__(self, self.message)
        self.section = section
        self.option = option
        self.configName = configName


class ConfigOptionNotFoundError(ConfigError, configparser.NoOptionError):
    """An option is missing from a section of a configuration file (also a
    configparser.NoOptionError)."""

    def __init__(self, configName: str, section: str, option: str) -> None:
        self.message = (
            f"Configuration {configName!r} has no option {option!r} in section {section!r}")
        ConfigError.__init__(self, self.message)
        self.section = section
        self.option = option
        self.configName = configName


class ConfigValueError(ConfigError, ValueError):
    """An option's value cannot be converted to the requested type."""


def _env_override_namespace(configName: str) -> str:
    root = os.path.splitext(os.path.basename(configName))[0]
    if not root:
        raise ConfigError(f"Configuration name {configName!r} has no file name")
    return ENV_OVERRIDE_PREFIX + root.upper().replace("-", "_") + "__"


class Config(configparser.ConfigParser):
    """One configuration file (e.g. "application.conf") with its overrides applied.

    Raises ConfigError naming APPLICATION_CONFIG_PATH when no base directory is given, the
    variable is unset and there is no default (outside a checkout), naming the path when the base file is missing or malformed, and naming
    file/section/option when a lookup fails.
    """

    def __init__(self, configName: str, baseConfigDir: str | os.PathLike[str] | None = None) -> None:
        super().__init__(interpolation=None)
        if not isinstance(configName, str) or not configName:
            raise ConfigError(f"Configuration name must be a non-empty string, got {configName!r}")
        if os.path.basename(configName) != configName:
            raise ConfigError(
                f"Configuration name must be a plain file name, got {configName!r}")
        if baseConfigDir is None:
            baseConfigDir = application_config_dir(configName)
        self._configName = configName
        self._envVarNamespace = _env_override_namespace(configName)
        self.baseConfigDir = os.fspath(baseConfigDir)
        self._load()

    def __repr__(self) -> str:
        return f"{type(self).__name__}<name={self._configName}, baseDir={self.baseConfigDir}>"

    @property
    def configName(self) -> str:
        """The configuration file name, e.g. "model-swapper.conf"."""
        return self._configName

    @property
    def baseConfigPath(self) -> str:
        """Path of the baseline file."""
        return os.path.join(self.baseConfigDir, self._configName)

    @property
    def overrideConfigPath(self) -> str:
        """Path of the optional override file layered on the baseline."""
        return os.path.join(self.baseConfigDir, OVERRIDES_DIR_NAME, self._configName)

    def _load(self) -> None:
        if not os.path.isfile(self.baseConfigPath):
            raise ConfigError(f"Configuration file not found: {self.baseConfigPath!r}")
        self._read_one(self.baseConfigPath)
        if os.path.isfile(self.overrideConfigPath):
            self._read_one(self.overrideConfigPath)

    def _read_one(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as fileObj:
                self.read_file(fileObj, source=path)
        except configparser.Error as exc:
            raise ConfigError(f"Malformed configuration file {path!r}: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Cannot read configuration file {path!r}: {exc}") from exc

    @staticmethod
    def getEnvVarOverrideName(configName: str, section: str, option: str) -> str:
        """Name of the environment variable overriding `option` of `section` in `configName`,
        e.g. ("model-swapper.conf", "interface_bus", "results_queue") →
        "_NTA_UTILS_CONFIG__MODEL_SWAPPER__INTERFACE_BUS__RESULTS_QUEUE"."""
        return _env_override_namespace(configName) + f"{section}__{option}".upper()

    def _env_override(self, section: str, option: str) -> str | None:
        return os.environ.get(self._envVarNamespace + f"{section}__{option}".upper())

    def get(self, section: str, option: str, *, raw: bool = False,  # type: ignore[override]
            vars: dict[str, str] | None = None, fallback: Any = _UNSET) -> Any:
        """Value of an existing option, replaced by its environment override when set.

        Missing section/option raises ConfigError (unless `fallback` is given)."""
        try:
            value = super().get(section, option, raw=raw, vars=vars)
        except configparser.NoSectionError:
            if fallback is not _UNSET:
                return fallback
            raise ConfigSectionNotFoundError(self._configName, section, option) from None
        except configparser.NoOptionError:
            if fallback is not _UNSET:
                return fallback
            raise ConfigOptionNotFoundError(self._configName, section, option) from None
        envValue = self._env_override(section, option)
        return value if envValue is None else envValue

    def _convert(self, section: str, option: str, conv: Callable[[str], _T], typeName: str,
                 fallback: Any, raw: bool, vars: dict[str, str] | None) -> Any:
        value = self.get(section, option, raw=raw, vars=vars, fallback=fallback)
        if fallback is not _UNSET and value is fallback:
            return fallback
        try:
            return conv(value)
        except (ValueError, TypeError) as exc:
            raise ConfigValueError(
                f"Configuration {self._configName!r} option {option!r} in section "
                f"{section!r} is not a valid {typeName}: {value!r}") from exc

    def getint(self, section: str, option: str, *, raw: bool = False,  # type: ignore[override]
               vars: dict[str, str] | None = None, fallback: Any = _UNSET, **kwargs: Any) -> Any:
        """Option value as int (environment override applied)."""
        return self._convert(section, option, int, "integer", fallback, raw, vars)

    def getfloat(self, section: str, option: str, *, raw: bool = False,  # type: ignore[override]
                 vars: dict[str, str] | None = None, fallback: Any = _UNSET, **kwargs: Any) -> Any:
        """Option value as float (environment override applied)."""
        return self._convert(section, option, float, "number", fallback, raw, vars)

    def getboolean(self, section: str, option: str, *, raw: bool = False,  # type: ignore[override]
                   vars: dict[str, str] | None = None, fallback: Any = _UNSET,
                   **kwargs: Any) -> Any:
        """Option value as bool (1/yes/true/on, 0/no/false/off; environment override applied)."""
        return self._convert(section, option, self._to_boolean, "boolean", fallback,
                             raw, vars)

    def _to_boolean(self, value: str) -> bool:
        """ConfigParser's words for booleans (ValueError for any other)."""
        if value.lower() not in self.BOOLEAN_STATES:
            raise ValueError(f"Not a boolean: {value}")
        return self.BOOLEAN_STATES[value.lower()]

    def items(self, section: Any = _UNSET, raw: bool = False,  # type: ignore[override]
              vars: dict[str, str] | None = None) -> Any:
        """(option, value) pairs of a section with environment overrides applied; without a
        section, the usual view of (name, SectionProxy) pairs."""
        if section is _UNSET:
            return super().items()
        try:
            pairs = super().items(section, raw=raw, vars=vars)
        except configparser.NoSectionError:
            raise ConfigSectionNotFoundError(self._configName, section) from None
        result = []
        for option, value in pairs:
            envValue = self._env_override(section, option)
            result.append((option, value if envValue is None else envValue))
        return result
