"""Tests of the HTTP server API, and a raw Centrifuge-protocol client for them.

``ProtocolClient`` speaks the JSON protocol by hand over ``websockets``, so what it reads is
exactly what the server wrote: each frame split on newlines, server pings (``{}``) skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.support.wsclient import TIMEOUT, closed_with, connect

__all__ = ["ProtocolClient", "protocol_client"]


class ProtocolClient:
    """One connected client: its ``client`` ID, and bounded reads of what the server sends."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.client = ""
        self._pending: list[dict[str, Any]] = []
        self._next_id = 1

    async def command(self, **command: Any) -> dict[str, Any]:
        """Send ``{"id": n, ...command}`` and return the reply with that ID."""
        command_id = self._next_id
        self._next_id += 1
        await self.ws.send(json.dumps({"id": command_id, **command}))
        return await self.next(lambda m: m.get("id") == command_id)

    async def subscribe(self, channel: str) -> None:
        reply = await self.command(subscribe={"channel": channel})
        assert "error" not in reply, reply

    async def next(
        self, matches: Callable[[dict[str, Any]], bool], seconds: float = TIMEOUT
    ) -> dict[str, Any]:
        """The first message (queued or arriving within ``seconds``) that ``matches``."""

        async def read() -> dict[str, Any]:
            while True:
                for index, message in enumerate(self._pending):
                    if matches(message):
                        return self._pending.pop(index)
                frame = await self.ws.recv()
                text = frame.decode() if isinstance(frame, bytes) else frame
                for line in text.split("\n"):
                    if line.strip() and (message := json.loads(line)):
                        self._pending.append(message)

        return await asyncio.wait_for(read(), seconds)

    async def push(self, channel: str, kind: str, seconds: float = TIMEOUT) -> dict[str, Any]:
        """The next push of ``kind`` (``pub``, ``subscribe``, ``unsubscribe``) on ``channel``."""
        message = await self.next(
            lambda m: m.get("push", {}).get("channel") == channel and kind in m["push"],
            seconds,
        )
        payload: dict[str, Any] = message["push"][kind]
        return payload

    async def closed_with(self) -> tuple[int, str]:
        return await closed_with(self.ws)


@asynccontextmanager
async def protocol_client(ws_base: str) -> AsyncIterator[ProtocolClient]:
    """A connected anonymous client (the server must run with ``--insecure``)."""
    async with connect(f"{ws_base}/connection/websocket") as ws:
        client = ProtocolClient(ws)
        reply = await client.command(connect={})
        assert "error" not in reply, reply
        client.client = reply["connect"]["client"]
        yield client
