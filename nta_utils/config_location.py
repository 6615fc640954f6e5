"""Where the configuration is when APPLICATION_CONFIG_PATH is not set.

In a checkout of this repository, scripts, services and the README's snippets use the
configuration of the application that is running: the engine alone (``make run-engine``,
``conf/``) when only it runs, otherwise the skeleton application's ``skeleton_app/conf`` (what
``make run`` runs and the tutorial uses). They say so once, on stderr. Outside a checkout
there is no default and the error names the variable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nta_utils.errors import ConfigError

APPLICATION_CONFIG_PATH_ENV = "APPLICATION_CONFIG_PATH"
REPO_ROOT = Path(__file__).resolve().parent.parent
SKELETON_CONF_DIR = REPO_ROOT / "skeleton_app" / "conf"
ENGINE_CONF_DIR = REPO_ROOT / "conf"
# supervisord pid files of `make run` (skeleton) and `make run-engine` (engine alone)
SKELETON_PID_FILE = REPO_ROOT / "skeleton_app" / "logs" / "supervisord.pid"
ENGINE_PID_FILE = REPO_ROOT / "logs" / "supervisord.pid"

_announced = False


def _running(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def default_config_dir() -> Path | None:
    """The configuration directory used when APPLICATION_CONFIG_PATH is unset, or None outside
    a checkout: conf/ if only `make run-engine` runs, else skeleton_app/conf."""
    if not (SKELETON_CONF_DIR / "application.conf").is_file():
        return None
    if _running(ENGINE_PID_FILE) and not _running(SKELETON_PID_FILE):
        return ENGINE_CONF_DIR
    return SKELETON_CONF_DIR


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def application_config_dir(configName: str = "application.conf") -> str:
    """$APPLICATION_CONFIG_PATH, or the running application's configuration in a checkout
    (announced once per process on stderr); ConfigError when neither exists."""
    global _announced
    path = os.environ.get(APPLICATION_CONFIG_PATH_ENV)
    if path:
        return path
    default = default_config_dir()
    if default is None:
        raise ConfigError(
            f"Environment variable {APPLICATION_CONFIG_PATH_ENV} is not set; set it to the "
            f"directory holding {configName!r} (the application's conf/ folder)")
    if not _announced:
        _announced = True
        which = ("the engine's, which `make run-engine` runs" if default == ENGINE_CONF_DIR
                 else "the skeleton application's, which `make run` runs")
        print(f"{APPLICATION_CONFIG_PATH_ENV} is not set: using {_display(default)} ({which}; "
              f"export {APPLICATION_CONFIG_PATH_ENV}=DIR to use another)", file=sys.stderr)
    return str(default)
