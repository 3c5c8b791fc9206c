"""Headless Debian Chromium driven by Playwright, for tests of the pages roomcast serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tests.support.ci import require_module, require_program

if TYPE_CHECKING:
    from playwright.async_api import Browser

__all__ = ["chromium"]

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
