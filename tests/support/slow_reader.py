"""A WebSocket client that stops reading, so that the server sees a slow consumer: its socket
has a small receive buffer, and the test pauses and resumes its reading."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import ClientConnection, connect

from tests.support.wsclient import TIMEOUT

__all__ = ["small_buffer_client"]

RECEIVE_BUFFER = 4096


@asynccontextmanager
async def small_buffer_client(host: str, port: int, path: str) -> AsyncIterator[ClientConnection]:
    """A connection to ``ws://host:port/path`` whose kernel receive buffer is 4 KiB; the test
    stops it reading with ``ws.transport.pause_reading()``. Aborted (no closing handshake)
    when the block ends, since a paused peer could not finish one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), TIMEOUT)
        ws = await asyncio.wait_for(
            connect(f"ws://{host}:{port}{path}", sock=sock, max_size=None), TIMEOUT
        )
    except BaseException:
        sock.close()
        raise
    try:
        yield ws
    finally:
        ws.transport.abort()
