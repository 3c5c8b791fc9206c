"""Small helpers around the ``websockets`` client, with a timeout on every wait."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["TIMEOUT", "closed_with", "connect", "recv", "recv_n", "recv_until"]

TIMEOUT = 5.0


async def recv(ws: ClientConnection, seconds: float = TIMEOUT) -> str | bytes:
    """The next message, or fail after ``seconds``."""
    return await asyncio.wait_for(ws.recv(), seconds)


async def recv_n(ws: ClientConnection, count: int, seconds: float = TIMEOUT) -> list[Any]:
    """The next ``count`` messages."""
    return [await recv(ws, seconds) for _ in range(count)]


async def recv_until(
    ws: ClientConnection,
    wanted: Callable[[str | bytes], bool],
    seconds: float = TIMEOUT,
    nudge: Callable[[], Awaitable[None]] | None = None,
) -> str | bytes:
    """The first message that is ``wanted``, skipping the others; fail after ``seconds``.
    ``nudge()`` runs whenever nothing arrived for 0.2 s: to send again something that may
    have been sent before the server was ready for it (a subscription not yet in place)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        try:
            message = await recv(ws, min(0.2, remaining))
        except TimeoutError:
            if nudge is not None:
                await nudge()
            continue
        if wanted(message):
            return message
    raise AssertionError(f"no wanted message within {seconds} s")


async def closed_with(ws: ClientConnection, seconds: float = TIMEOUT) -> tuple[int, str]:
    """Read until the server closes; return its close code and reason."""

    async def drain() -> None:
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return

    await asyncio.wait_for(drain(), seconds)
    assert ws.close_code is not None, "the connection ended without a close frame"
    return ws.close_code, ws.close_reason or ""
