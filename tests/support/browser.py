"""Headless Debian Chromium driven by Playwright, for tests of the pages roomcast serves, and
the screenshots those tests save for a person to look at (``test-artifacts/``, git-ignored;
``tests/e2e/browser/conftest.py`` lists them at the end of the run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.ci import require_module, require_program

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

__all__ = ["ARTIFACTS", "SAVED_SCREENSHOTS", "chromium", "screenshot"]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Where a test run leaves what a person may want to look at (git-ignored)."""

SAVED_SCREENSHOTS: list[Path] = []
"""Every screenshot saved by this run, in order."""

# Without the background-networking flags Chromium tries to reach hosts this machine cannot.
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_HINT = "`make test` installs it"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium (Debian's, installed by ``make test``); without it or Playwright
    the test is skipped, or fails under ``CI=true`` (``tests.support.ci``)."""
    path = require_program("chromium", "chromium-browser", hint=_HINT)
    playwright_api = require_module("playwright.async_api", hint=_HINT)
    async with playwright_api.async_playwright() as playwright:
        browser: Browser = await playwright.chromium.launch(executable_path=path, args=_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def screenshot(page: Page, folder: str, name: str) -> Path:
    """Save the whole of ``page`` as ``test-artifacts/<folder>/<name>.png`` and record it."""
    path = ARTIFACTS / folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    SAVED_SCREENSHOTS.append(path)
    return path
