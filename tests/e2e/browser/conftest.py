"""The browser suites' screenshots, listed at the end of the run for a person to look at."""

from __future__ import annotations

import pytest

from tests.support.browser import SAVED_SCREENSHOTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SAVED_SCREENSHOTS:
        return
    terminalreporter.write_sep("-", "screenshots saved by this run")
    for path in SAVED_SCREENSHOTS:
        terminalreporter.write_line(str(path))
