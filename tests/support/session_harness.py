"""Sessions driven without a server: frames in through ``handle``, replies out of a real Writer.

Every session here belongs to a real, started Hub (memory engines) and writes to a real Writer
whose send function records frames, as the transport would send them. ``conftest.py`` makes
the ``harness`` and ``hub`` fixtures of these.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomcast.hub import Hub
from roomcast.protocol import DisconnectCode
from roomcast.session.connection import Session
from roomcast.session.hooks import Credentials
from roomcast.settings import Settings
from roomcast.writer import Close, Frame, Writer

__all__ = [
    "CHANNELS",
    "FEED",
    "SECRET",
    "TIMEOUT",
    "Client",
    "Harness",
    "Peer",
    "early_in_a_second",
    "error_code",
    "public_pem",
    "sub_token",
    "token",
]

SECRET = "session-test-secret-" + "s" * 48
TIMEOUT = 2.0

CHANNELS: dict[str, Any] = {
    "without_namespace": {"allow_subscribe_for_client": True, "allow_user_limited_channels": True},
    "namespaces": [
        {
            "name": "chat",
            "allow_subscribe_for_client": True,
            "allow_publish_for_subscriber": True,
            "allow_presence_for_subscriber": True,
            "allow_history_for_subscriber": True,
        },
        {"name": "closed"},
        {"name": "dialog", "allow_user_limited_channels": True},
        {
            "name": "public",
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "allow_publish_for_client": True,
        },
    ],
}

FEED: dict[str, Any] = {
    "namespaces": [
        {
            "name": "feed",
            "history_size": 10,
            "history_ttl": "60s",
            "force_positioning": True,
            "presence": True,
            "allow_subscribe_for_client": True,
        }
    ]
}
"""Channels ``feed:*`` keep history and presence, and every subscription to them is positioned."""


def token(user: str = "alice", **claims: Any) -> str:
    return jwt.encode({"sub": user, **claims}, SECRET, algorithm="HS256")


def sub_token(channel: str, user: str = "alice", **claims: Any) -> str:
    return token(user, channel=channel, **claims)


async def early_in_a_second() -> None:
    """Wait, if needed, so that a whole-second expiry set now does not straddle a tick."""
    fraction = time.time() % 1
    if fraction > 0.7:
        await asyncio.sleep(1.02 - fraction)


class Peer:
    """The far end of a Writer: every JSON line it sends, and its closing frame."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames = 0
        self.close: Close | None = None
        self.closed = asyncio.Event()

    async def send(self, frame: Frame) -> None:
        if isinstance(frame, Close):
            self.close = frame
            self.closed.set()
            return
        self.frames += 1
        text = frame.decode() if isinstance(frame, bytes) else frame
        for line in text.split("\n"):
            self.messages.put_nowait(json.loads(line))


class Client:
    """One session with its writer, spoken to as an SDK would."""

    def __init__(self, session: Session, writer: Writer, peer: Peer) -> None:
        self.session = session
        self.writer = writer
        self.peer = peer
        self.stash: list[dict[str, Any]] = []
        self._last_id = 0

    async def send(self, *commands: dict[str, Any]) -> None:
        await self.session.handle("\n".join(json.dumps(c) for c in commands).encode())

    async def call(self, method: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command with a fresh id and return its reply; pushes before it are stashed."""
        self._last_id += 1
        await self.send({"id": self._last_id, method: request or {}})
        return await self.reply(self._last_id)

    async def reply(self, command_id: int) -> dict[str, Any]:
        while True:
            message = await self.next()
            if message.get("id") == command_id:
                return message
            self.stash.append(message)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.peer.messages.get(), TIMEOUT)

    async def push(self) -> dict[str, Any]:
        """The next push: stashed ones first."""
        if self.stash:
            return self.stash.pop(0)["push"]  # type: ignore[no-any-return]
        message = await self.next()
        assert "push" in message, message
        return message["push"]  # type: ignore[no-any-return]

    async def connect(self, jwt_token: str = "") -> dict[str, Any]:
        reply = await self.call("connect", {"token": jwt_token} if jwt_token else {})
        assert "connect" in reply, reply
        return reply["connect"]  # type: ignore[no-any-return]

    async def subscribe(self, channel: str, **request: Any) -> dict[str, Any]:
        return await self.call("subscribe", {"channel": channel, **request})

    async def closed_with(self, within: float = TIMEOUT) -> Close:
        await asyncio.wait_for(self.peer.closed.wait(), within)
        assert self.peer.close is not None
        return self.peer.close

    def nothing_more(self) -> bool:
        return self.peer.messages.empty() and not self.peer.closed.is_set()


class Harness:
    """Makes started hubs and connected-to-nothing clients; tears everything down after."""

    def __init__(self) -> None:
        self._hubs: list[Hub] = []
        self._clients: list[Client] = []

    async def hub(
        self,
        client: dict[str, Any] | None = None,
        channel: dict[str, Any] | None = None,
        engine: dict[str, Any] | None = None,
    ) -> Hub:
        """A started hub with these settings sections; every engine in memory."""
        client_settings: dict[str, Any] = {"token": {"hmac_secret_key": SECRET}, **(client or {})}
        settings = Settings.load(
            client=client_settings,
            channel=channel or CHANNELS,
            engine={"history": "memory://", **(engine or {})},
        )
        hub = Hub(settings)
        await hub.start()
        self._hubs.append(hub)
        return hub

    def client(self, hub: Hub, credentials: Credentials | None = None) -> Client:
        """A session of ``hub``, not connected yet; ``credentials`` as the app's
        ``authenticate`` dependency would give them."""
        peer = Peer()
        writer = Writer(
            peer.send,
            max_queue_bytes=1 << 20,
            overflow=Close(DisconnectCode.SLOW, "slow"),
            coalesce=True,
        )
        writer.start()
        client = Client(Session(hub.services, writer, credentials), writer, peer)
        self._clients.append(client)
        return client

    async def connected(self, hub: Hub, user: str = "alice", **claims: Any) -> Client:
        client = self.client(hub)
        await client.connect(token(user, **claims))
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.session.closed()
            client.writer.discard()
        for hub in self._hubs:
            await hub.stop()


def error_code(reply: dict[str, Any]) -> int:
    assert "error" in reply, reply
    return int(reply["error"]["code"])


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
