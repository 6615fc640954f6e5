"""Helpers of the dashboard's browser tests: where Debian's chromium is, a recording tab."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page


def chromium_path() -> str:
    """Debian's chromium (scripts/ensure-services.sh chromium installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run scripts/ensure-services.sh chromium "
                    "(make test does)")
    return found


class DashboardPage:
    """A browser tab on the dashboard that records console errors and uncaught exceptions."""

    def __init__(self, page: Page, base_url: str, screenshots: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.screenshots = screenshots
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.errors.append(f"console {message.type}: {message.text} at {message.location}")

    def open(self, fragment: str = "#/") -> None:
        """Load the dashboard at `fragment`."""
        self.page.goto(f"{self.base_url}/{fragment}")

    def shot(self, name: str) -> Path:
        """Save a full-page screenshot `name`.png; its path."""
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path
