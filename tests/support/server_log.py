"""Reading a ``roomcast serve`` log for what should fail a test: error records, and tracebacks
other than the ones a library prints while the engine cannot be reached (which is what a test
that stops or cuts the engine causes)."""

from __future__ import annotations

import re

__all__ = ["engine_down_tracebacks", "log_problems"]

_ERROR_RECORD = re.compile(r"^(ERROR|CRITICAL):")
_ENGINE_DOWN = re.compile(
    r"^(\w+\.)*(Connection\w*Error|CannotConnectNowError|OSError|TimeoutError)\b"
)
"""Exceptions that only say the engine cannot be reached, which is what such a test causes."""


def log_problems(log: str) -> list[str]:
    """What in a node's log fails a test that disturbs the engine: every ERROR or CRITICAL
    record, and every traceback that ends in anything but a failure to reach the engine (a
    library may log one of those, with its traceback, while the engine is down: see
    ``engine_down_tracebacks``)."""
    problems = [line for line in log.splitlines() if _ERROR_RECORD.match(line)]
    problems += [
        f"traceback ending in {last!r}"
        for last in _traceback_ends(log)
        if not _ENGINE_DOWN.match(last)
    ]
    return problems


def engine_down_tracebacks(log: str) -> list[str]:
    """The last line of each traceback that only says the engine could not be reached."""
    return [last for last in _traceback_ends(log) if _ENGINE_DOWN.match(last)]


def _traceback_ends(log: str) -> list[str]:
    """The exception line ending each traceback in ``log``."""
    ends = []
    inside = False
    for line in log.splitlines():
        if line.startswith("Traceback (most recent call last):"):
            inside = True
        elif inside and line and not line[0].isspace():
            ends.append(line)
            inside = False
    return ends
