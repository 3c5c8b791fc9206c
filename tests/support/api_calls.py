"""What the server API tests share besides fixtures: the key, raw HTTP calls, bounded waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec

from tests.support.server import RunningServer
from tests.support.wsclient import TIMEOUT

__all__ = ["FEED", "KEY", "eventually", "post"]

KEY = "k"
"""The API key every test server here runs with."""

FEED = {
    "name": "feed",
    "history_size": 5,
    "history_ttl": "60s",
    "presence": True,
    "allow_subscribe_for_client": True,
}
"""The namespace of the history server: channels ``feed:*`` keep history and presence."""


def post(server: RunningServer, method: str, body: Any, key: str = KEY) -> httpx.Response:
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(f"{server.http}/api/{method}", content=content, headers=headers, timeout=5)


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = TIMEOUT) -> None:
    """Wait until ``await condition()`` is true, failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)
