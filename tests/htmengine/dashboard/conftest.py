"""The web dashboard in real headless Chromium (Debian's, driven by playwright) against the
engine under supervisord, started as the API tests start it (their conftest's helpers);
every page records console errors, and screenshots go to the run's output folder
(`$HTMENGINE_TEST_OUTPUT`, else the repository's ``logs/test-output``) under
``dashboard_screenshots``, replaced by each run."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve().parent
_API_TESTS = _HERE.parent / "api"
_REPO = _HERE.parents[2]
sys.path.insert(0, str(_API_TESTS))
sys.path.insert(0, str(_HERE.parent / "runtime"))
sys.path.insert(0, str(_HERE))


def _load_api_conftest() -> Any:
    spec = importlib.util.spec_from_file_location("api_tests_conftest", _API_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_API_CONFTEST = _load_api_conftest()
_HOLDER = _API_CONFTEST._EngineHolder()

from api_support import LiveEngine  # noqa: E402
from dashboard_support import DashboardPage, chromium_path  # noqa: E402
from playwright.sync_api import Browser, sync_playwright  # noqa: E402


@pytest.fixture()
def live(engine_env, migrated_db, tmp_path_factory: pytest.TempPathFactory) -> LiveEngine:
    """The whole engine under supervisord, shared by this folder's tests."""
    return _HOLDER.get(engine_env, tmp_path_factory)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the engine when the next test is not in this folder, after the test's fixtures
    (its browser tab, whose auto-refresh would otherwise meet a stopped API) are torn down."""
    if nextitem is None or Path(nextitem.path).resolve().parent != _HERE:
        _HOLDER.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the session."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where the tests save their screenshots."""
    root = os.environ.get("HTMENGINE_TEST_OUTPUT")
    folder = (Path(root) if root else _REPO / "logs" / "test-output") / "dashboard_screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture()
def dashboard(browser: Browser, live: LiveEngine, screenshot_dir: Path) -> Iterator[DashboardPage]:
    """A fresh tab on the live engine's dashboard; fails the test on any console error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30000)
    tab = DashboardPage(page, live.base_url, screenshot_dir)
    try:
        yield tab
    finally:
        context.close()
    assert tab.errors == [], "\n".join(tab.errors)
