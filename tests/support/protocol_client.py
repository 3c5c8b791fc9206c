"""A raw client of the Centrifuge client protocol v2 (JSON), for end-to-end tests.

``ProtocolClient`` speaks the protocol by hand over ``websockets``, so what it reads is exactly
what the server wrote: each frame split on newlines, server pings (``{}``) skipped without an
answer (tests that need pongs send them), replies and pushes kept in arrival order until a
read asks for them. Every read is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.support.wsclient import TIMEOUT, closed_with, connect

__all__ = ["ProtocolClient", "protocol_client"]

Message = dict[str, Any]


class ProtocolClient:
    """One connection: its ``client`` ID and whole ``connected`` result once connected, and
    bounded reads of what the server sends. ``user`` is whom the test connected it as ("" for
    anonymous)."""

    def __init__(self, ws: ClientConnection, user: str = "") -> None:
        self.ws = ws
        self.user = user
        self.client = ""
        self.connected: Message = {}
        self._pending: list[Message] = []
        self._next_id = 1

    async def command(self, **command: Any) -> Message:
        """Send ``{"id": n, ...command}`` and return the whole reply with that ID (``error``
        included, if the server refused)."""
        command_id = self._next_id
        self._next_id += 1
        await self.ws.send(json.dumps({"id": command_id, **command}))
        return await self.next(lambda m: m.get("id") == command_id)

    async def call(self, method: str, **params: Any) -> Message:
        """Send one ``method`` command and return its result; fails on an error reply."""
        reply = await self.command(**{method: params})
        assert "error" not in reply, f"{method} {params}: {reply}"
        result: Message = reply.get(method, {})
        return result

    async def connect(self, **params: Any) -> Message:
        """Send ``connect`` (a ``token``, if the server wants one); fails on an error."""
        self.connected = await self.call("connect", **params)
        self.client = self.connected["client"]
        return self.connected

    async def subscribe(self, channel: str, **options: Any) -> Message:
        """Subscribe with ``options`` (``recover``, ``offset``, ``join_leave``...); the
        subscribe result. Fails on an error reply."""
        return await self.call("subscribe", channel=channel, **options)

    async def next(self, matches: Callable[[Message], bool], seconds: float = TIMEOUT) -> Message:
        """The first message (already received or arriving within ``seconds``) that
        ``matches``; the ones before it stay for later reads."""

        async def read() -> Message:
            while True:
                for index, message in enumerate(self._pending):
                    if matches(message):
                        return self._pending.pop(index)
                await self._receive()

        return await asyncio.wait_for(read(), seconds)

    async def push(self, channel: str, kind: str, seconds: float = TIMEOUT) -> Message:
        """The next push of ``kind`` (``pub``, ``join``, ``unsubscribe``...) on ``channel``:
        its payload."""
        message = await self.next(
            lambda m: m.get("push", {}).get("channel") == channel and kind in m["push"],
            seconds,
        )
        payload: Message = message["push"][kind]
        return payload

    async def next_push(self, seconds: float = TIMEOUT) -> Message:
        """The next push of any kind on any channel, whole (``{"channel": ..., kind: ...}``)."""
        message = await self.next(lambda m: "push" in m, seconds)
        push: Message = message["push"]
        return push

    async def pushes_within(self, seconds: float) -> list[Message]:
        """Every push that arrived so far or arrives within ``seconds``: for a test that
        asserts nothing else came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._receive(), remaining)
            except TimeoutError:
                break
        pushes = [m["push"] for m in self._pending if "push" in m]
        self._pending = [m for m in self._pending if "push" not in m]
        return pushes

    async def closed_with(self, seconds: float = TIMEOUT) -> tuple[int, str]:
        """Read until the server closes; its close code and reason."""
        return await closed_with(self.ws, seconds)

    async def _receive(self) -> None:
        frame = await self.ws.recv()
        text = frame.decode() if isinstance(frame, bytes) else frame
        for line in text.split("\n"):
            if line.strip() and (message := json.loads(line)):
                self._pending.append(message)


@asynccontextmanager
async def protocol_client(
    ws_base: str, *, token: str | None = None, user: str = "", **headers: str
) -> AsyncIterator[ProtocolClient]:
    """A client of ``ws_base``/connection/websocket, connected with ``token``, or anonymously
    without one (the server must allow that: ``--insecure``, for instance). ``headers`` go
    with the WebSocket handshake (``Origin=...``)."""
    url = f"{ws_base}/connection/websocket"
    async with connect(url, additional_headers=headers or None, open_timeout=TIMEOUT) as ws:
        client = ProtocolClient(ws, user)
        await client.connect(**({"token": token} if token is not None else {}))
        yield client
