"""``tests/support/hooks_app.py`` run by uvicorn with roomcast's WebSocket protocol, and the
JSON-lines log its hooks write, read with bounded waits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ROOMCAST_PROTOCOL, RunningServer, start_app

__all__ = ["HookLog", "start_hooks_app"]


Event = dict[str, Any]


class HookLog:
    """What the app's hooks heard, one dict per call, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def events(self, hook: str | None = None, **fields: Any) -> list[Event]:
        """The calls of ``hook`` (every hook if None) whose fields include ``fields``."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line) for line in lines if line]
        return [
            e
            for e in found
            if (hook is None or e["hook"] == hook) and all(e.get(k) == v for k, v in fields.items())
        ]

    async def until(self, condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
        """Return once ``condition()`` holds; fail naming ``what`` after ``seconds``."""
        deadline = time.monotonic() + seconds
        # Another process writes the file: there is nothing to await but its growth.
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} in {seconds}s; the hooks heard: {self.events()}")
            await asyncio.sleep(0.05)


def start_hooks_app(directory: Path, *, expire_in: int = 0) -> tuple[RunningServer, HookLog]:
    """The hooks app on a free port, logging into ``directory``; with ``expire_in``, the
    connections it lets in expire that many seconds after each connect or refresh."""
    log = HookLog(directory / "hooks.jsonl")
    env = {"HOOKS_LOG": str(log.path)}
    if expire_in:
        env["HOOKS_EXPIRE_IN"] = str(expire_in)
    server = start_app("tests.support.hooks_app:app", *ROOMCAST_PROTOCOL, env=env)
    return server, log
