"""One rule for every test that needs something from outside the test run.

A service that does not answer, a driver that is not installed, a program that is not on the
PATH: the test is skipped with the reason, so a developer without, say, NATS still runs the
rest, except under ``CI=true``, where the same absence fails the test. CI runs on a machine
that ``make test`` prepared, so anything missing there is a broken setup, never a reason to
pass quietly.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["missing", "require_module", "require_port", "require_program", "under_ci"]


def under_ci() -> bool:
    """Whether this run is CI's (``CI=true``), where nothing may be missing."""
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip the current test because of ``reason``; fail it instead under ``CI=true``."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: nothing may be missing)")
    pytest.skip(reason, allow_module_level=True)


def require_port(name: str, host: str, port: int, *, hint: str = "") -> None:
    """Go on only if ``host:port`` accepts a TCP connection within a second."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return
    except OSError as exc:
        missing(f"{name} at {host}:{port} is unreachable ({exc}){'; ' + hint if hint else ''}")


def require_module(name: str, *, hint: str = "") -> ModuleType:
    """The imported module ``name``; missing if it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"module {name} cannot be imported ({exc}){'; ' + hint if hint else ''}")


def require_program(name: str, *alternatives: str, hint: str = "") -> str:
    """The path of program ``name`` on the PATH, else of the first of ``alternatives`` that
    is (another name for the same program); missing if there is none."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path is not None:
            return path
    names = " or ".join((name, *alternatives))
    missing(f"{names} is not on the PATH{'; ' + hint if hint else ''}")
