"""What the load client says on the wire to each kind of server: one class per protocol.

A dialect knows three things: how a subscriber joins a channel (the handshake; callers bound
it with ``asyncio.timeout``), how a publisher connection frames a publication, and how to keep
a connection alive (application-level pings). After the handshake it installs a callback on
the connection that feeds the :class:`~bench.payload.Recorder` - the hot path, so it does as
little as it can.

* ``plain`` - the FastAPI ``ConnectionManager`` and ``websockets`` baselines: every connection
  on the subscriber path is subscribed; it sends ``sub`` and waits for ``ok`` so that it is known
  to be in the server's list before publishing starts.
* ``socketio`` - Engine.IO v4 over the websocket transport only: the server opens with
  ``0{...}``, the client connects the default namespace with ``40`` and waits for ``40{...}``,
  then emits ``join`` with an ack id (``421["join","bench"]``) and waits for the ack ``431[...]``.
  The server pings with ``2``; the client answers ``3``. Events arrive as ``42["msg",{...}]``.
* ``centrifuge`` - Centrifuge client protocol v2, JSON: ``connect`` then ``subscribe``, replies
  matched by id; several replies or pushes may share one frame, one per line; the server's
  ``{}`` ping is answered with ``{}``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from bench.payload import Recorder
from bench.wsclient import WsConn

__all__ = [
    "CentrifugeDialect",
    "Dialect",
    "DialectError",
    "PlainDialect",
    "SocketIODialect",
    "get_dialect",
]


class DialectError(RuntimeError):
    """The server answered a handshake step with something other than success."""


class Dialect(ABC):
    """How a load client talks to one kind of server."""

    name: str
    subscriber_path: str
    publisher_path: str

    @abstractmethod
    async def subscribe(self, conn: WsConn, channel: str) -> None:
        """Complete the protocol handshake and join ``channel``; raise on failure."""

    @abstractmethod
    def stream(self, conn: WsConn, recorder: Recorder) -> None:
        """Install the post-handshake callback: record publications, answer pings."""

    @abstractmethod
    async def open_publisher(self, conn: WsConn) -> None:
        """Make ``conn`` ready to publish (and keep answering pings afterwards)."""

    @abstractmethod
    def publish_frame(self, channel: str, body: bytes) -> bytes:
        """The text frame that publishes ``body`` (a JSON object) to ``channel``."""

    def errors(self) -> list[str]:
        """Error replies the publisher connection received (dialects with replies only)."""
        return []


class PlainDialect(Dialect):
    """Raw WebSocket: connected means subscribed; the publisher sends the payload as is."""

    name = "plain"
    subscriber_path = "/ws"
    publisher_path = "/pub"

    async def subscribe(self, conn: WsConn, channel: str) -> None:
        conn.send(b"sub")
        reply = await conn.recv()
        if reply != b"ok":
            raise DialectError(f"expected 'ok', got {reply[:80]!r}")

    def stream(self, conn: WsConn, recorder: Recorder) -> None:
        record = recorder.record

        def on_message(payload: bytes, now: int) -> None:
            conn.received += record(payload, now)

        conn.on_message = on_message

    async def open_publisher(self, conn: WsConn) -> None:
        conn.on_message = _ignore

    def publish_frame(self, channel: str, body: bytes) -> bytes:
        return body


class SocketIODialect(Dialect):
    """Socket.IO v5 on Engine.IO v4, websocket transport from the first request."""

    name = "socketio"
    subscriber_path = "/socket.io/?EIO=4&transport=websocket"
    publisher_path = subscriber_path

    async def _connect_namespace(self, conn: WsConn) -> None:
        opening = await self._next(conn)
        if not opening.startswith(b"0{"):
            raise DialectError(f"expected an Engine.IO open packet, got {opening[:80]!r}")
        conn.send(b"40")
        reply = await self._next(conn)
        if not reply.startswith(b"40"):
            raise DialectError(f"namespace connect refused: {reply[:120]!r}")

    async def _next(self, conn: WsConn) -> bytes:
        """Next Engine.IO packet that is not a ping (pings are answered on the way)."""
        while True:
            packet = await conn.recv()
            if packet == b"2":
                conn.send(b"3")
                continue
            return packet

    async def subscribe(self, conn: WsConn, channel: str) -> None:
        await self._connect_namespace(conn)
        conn.send(b'421["join",' + json.dumps(channel).encode() + b"]")
        while True:
            packet = await self._next(conn)
            if packet.startswith(b"431"):
                return

    def stream(self, conn: WsConn, recorder: Recorder) -> None:
        record = recorder.record

        def on_message(payload: bytes, now: int) -> None:
            if payload[:2] == b"42":
                conn.received += record(payload, now)
            elif payload == b"2":
                conn.send(b"3")

        conn.on_message = on_message

    async def open_publisher(self, conn: WsConn) -> None:
        await self._connect_namespace(conn)

        def on_message(payload: bytes, _now: int) -> None:
            if payload == b"2":
                conn.send(b"3")

        conn.on_message = on_message

    def publish_frame(self, channel: str, body: bytes) -> bytes:
        return b'42["publish",' + body + b"]"


class CentrifugeDialect(Dialect):
    """Centrifuge client protocol v2, JSON, as spoken by roomcast (and Centrifugo)."""

    name = "centrifuge"
    subscriber_path = "/connection/websocket"
    publisher_path = subscriber_path

    def __init__(self) -> None:
        self._next_id = 100
        self._errors: list[str] = []

    async def _call(self, conn: WsConn, command: dict[str, Any]) -> None:
        self._next_id += 1
        cid = self._next_id
        conn.send(json.dumps({"id": cid, **command}, separators=(",", ":")).encode())
        while True:
            for line in (await conn.recv()).split(b"\n"):
                if line == b"{}":
                    conn.send(b"{}")
                    continue
                if not line.strip():
                    continue
                reply = json.loads(line)
                if reply.get("id") != cid:
                    continue
                if "error" in reply:
                    raise DialectError(f"{next(iter(command))} failed: {reply['error']}")
                return

    async def subscribe(self, conn: WsConn, channel: str) -> None:
        await self._call(conn, {"connect": {}})
        await self._call(conn, {"subscribe": {"channel": channel}})

    def stream(self, conn: WsConn, recorder: Recorder) -> None:
        record = recorder.record

        def on_message(payload: bytes, now: int) -> None:
            conn.received += record(payload, now)
            if b"{}" in payload and b"{}" in payload.split(b"\n"):
                conn.send(b"{}")

        conn.on_message = on_message

    async def open_publisher(self, conn: WsConn) -> None:
        await self._call(conn, {"connect": {}})
        errors = self._errors

        def on_message(payload: bytes, _now: int) -> None:
            for line in payload.split(b"\n"):
                if line == b"{}":
                    conn.send(b"{}")
                elif b'"error"' in line and len(errors) < 5:
                    errors.append(line[:200].decode(errors="replace"))

        conn.on_message = on_message

    def publish_frame(self, channel: str, body: bytes) -> bytes:
        self._next_id += 1
        head = b'{"id":%d,"publish":{"channel":' % self._next_id
        return head + json.dumps(channel).encode() + b',"data":' + body + b"}}"

    def errors(self) -> list[str]:
        return list(self._errors)


def _ignore(_payload: bytes, _now: int) -> None:
    return None


def get_dialect(name: str) -> Dialect:
    """A fresh dialect instance by name (``plain``, ``socketio`` or ``centrifuge``)."""
    dialects: dict[str, type[Dialect]] = {
        "plain": PlainDialect,
        "socketio": SocketIODialect,
        "centrifuge": CentrifugeDialect,
    }
    try:
        return dialects[name]()
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; known: {', '.join(dialects)}") from None
