"""ManagedSocket: a Starlette WebSocket with sends that never wait and reads that check input.

Written the plain Starlette way, an endpoint calls ``await websocket.send_text(...)`` and
``receive_text()`` directly: one slow client stalls a broadcast that awaits each send, and a
binary frame where text was expected raises in the handler. A ManagedSocket sends by pushing
into the connection's :class:`~roomcast.writer.Writer` (never waiting for the client), and its
reads turn bad input into a close with the right code and reason plus one log line:

- a binary frame where text is expected, or text where binary is:
  ``CloseCode.UNSUPPORTED_DATA`` (1003);
- a text frame that is not valid JSON on a JSON read: ``CloseCode.INVALID_PAYLOAD`` (1007)
  (text that is not UTF-8 is refused with the same code by the server's WebSocket protocol);
- a frame over ``websocket.message_size_limit``: ``CloseCode.MESSAGE_TOO_BIG`` (1009).

A client that reads too slowly for its queue (``client.queue_max_size``) is closed with
``DisconnectCode.SLOW`` (3008), the code the Centrifuge endpoint uses for the same thing.

A ManagedSocket is a TEXT :class:`~roomcast.node.Subscriber`: a Node delivers the messages of
the rooms it joined (:mod:`roomcast.sockets.rooms`) straight into its writer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from types import TracebackType
from typing import Any, Literal

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from roomcast.errors import StateError
from roomcast.protocol import DisconnectCode
from roomcast.publication import ChannelEvent, ClientInfo
from roomcast.sockets.rooms import RoomMembership, RoomServices
from roomcast.transport.asgi import asgi_frame_sender, over_limit, unsent_of, write_now_of
from roomcast.transport.close_codes import CloseCode
from roomcast.wire import WireFormat
from roomcast.writer import Close, Writer, WriterState

__all__ = ["ManagedSocket", "SocketState"]

logger = logging.getLogger("roomcast.sockets")

_json_decoder = msgspec.json.Decoder()


class SocketState(Enum):
    """CONNECTING until accepted; OPEN; CLOSING once this side sent its close; GONE when over."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    GONE = "gone"


class ManagedSocket:
    """One WebSocket connection of your own endpoint; made by ``ConnectionManager.connect``
    and used as ``async with manager.connect(websocket) as socket``.

    Entering accepts the WebSocket, starts the writer and joins the rooms given to
    ``connect``. Leaving leaves every room, sends what is queued, then closes with
    ``NORMAL_CLOSURE`` (a close already sent or under way stands), waiting for that at most
    ``CLOSE_FLUSH_TIMEOUT`` (5 s), and not at all if the client is gone. An exception raised
    in the block is logged once, with its traceback, and closes with ``INTERNAL_ERROR``
    (1011); it does not propagate, so the endpoint goes on after the block as it does after
    any other end of the connection (``WebSocketDisconnect`` is an ordinary end, not logged).
    Cancellation propagates.

    Args:
        websocket: the endpoint's Starlette (FastAPI) WebSocket, not accepted yet.
        services: what the rooms need (node, presence store, channel rules, settings).
        user: who this connection is, as presence lists it ("" for anonymous).
        info: any JSON-encodable value that presence shows for this connection.
        rooms: the rooms to join on entry, for the whole connection.
        subprotocol: the WebSocket subprotocol to accept with, if any.
    """

    wire_format = WireFormat.TEXT
    join_leave = False

    def __init__(
        self,
        websocket: WebSocket,
        services: RoomServices,
        *,
        user: str = "",
        info: Any = None,
        rooms: tuple[str, ...] = (),
        subprotocol: str | None = None,
    ) -> None:
        settings = services.settings
        self._websocket = websocket
        self._max_message_bytes = settings.websocket.message_size_limit
        self._writer = Writer(
            asgi_frame_sender(websocket.send),
            max_queue_bytes=settings.client.queue_max_size,
            overflow=Close(DisconnectCode.SLOW, "slow consumer: too many unsent messages"),
            write_now=write_now_of(websocket.scope),
            unsent=unsent_of(websocket.scope),
        )
        self._reader: asyncio.Task[None] | None = None
        self._initial_rooms = rooms
        self._subprotocol = subprotocol
        self.client = str(uuid.uuid4())
        """This connection's ID, unique in the process; presence lists it."""
        self.user = user
        self.state = SocketState.CONNECTING
        conn_info = b"" if info is None else msgspec.json.encode(info)
        self._membership = RoomMembership(self, ClientInfo(user, self.client, conn_info), services)

    @property
    def writer(self) -> Writer:
        """This connection's writer (the Node reads its backlog to pace publishers)."""
        return self._writer

    @property
    def websocket(self) -> WebSocket:
        """The Starlette WebSocket underneath, for its path, headers, cookies and query."""
        return self._websocket

    @property
    def path(self) -> str:
        """The request path, for log lines."""
        return self._websocket.url.path

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in now."""
        return self._membership.rooms

    @property
    def open(self) -> bool:
        """Whether messages sent now can still reach the client (not closing, not gone, not
        cut off as slow)."""
        return self.state is SocketState.OPEN and self._writer.state is WriterState.OPEN

    # --- the connection's life ----------------------------------------------------------------

    async def __aenter__(self) -> ManagedSocket:
        if self.state is not SocketState.CONNECTING:
            raise StateError("accept", expected="connecting", actual=self.state.value)
        await self._websocket.accept(subprotocol=self._subprotocol)
        self.state = SocketState.OPEN
        self._writer.start()
        try:
            for room in self._initial_rooms:
                await self._membership.join(room)
        except BaseException:
            # The block never runs: the caller gets the exception (an engine that cannot be
            # reached, a room name that is no channel), the client a close.
            await self._end(None, close=Close(CloseCode.INTERNAL_ERROR, "could not join a room"))
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        await self._end(exc)
        return isinstance(exc, Exception)

    async def _end(self, exc: BaseException | None, *, close: Close | None = None) -> None:
        """Leave every room, then close with ``close`` (else as the block ended)."""
        if self._reader is not None:
            self._reader.cancel()
        failed = isinstance(exc, Exception) and not isinstance(exc, WebSocketDisconnect)
        if failed:
            logger.error("%s failed", self.path, exc_info=exc)
        await self._membership.leave_all()
        if self.state is SocketState.GONE or isinstance(exc, WebSocketDisconnect):
            self.state = SocketState.GONE
            self._writer.discard()
            return
        if close is None and failed:
            close = Close(CloseCode.INTERNAL_ERROR, "internal server error")
        elif close is None:
            close = Close(CloseCode.NORMAL_CLOSURE, "")
        if self.state is SocketState.OPEN:
            self.state = SocketState.CLOSING
        await self._writer.close_and_flush(close)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Send what is queued, then close with ``code`` and ``reason``; the reads end.
        Nothing happens if the connection is already closing or gone."""
        if self.state is SocketState.OPEN:
            self.state = SocketState.CLOSING
            self._writer.close(Close(code, reason))

    # --- rooms ---------------------------------------------------------------------------------

    async def join(self, room: str) -> None:
        """Receive ``room``'s messages from now on, on every node; enter its presence and
        announce the join if its namespace has ``presence`` / ``join_leave``. Joining a room
        twice is joining it once.

        Raises:
            StateError: the connection is not open.
            ConfigurationError: ``room`` is not a valid channel name, or names a namespace
                that ``channel.namespaces`` does not define.
            EngineUnavailable: the broker could not subscribe; the room is not joined.
        """
        if self.state is not SocketState.OPEN:
            raise StateError("join a room", expected="open", actual=self.state.value)
        await self._membership.join(room)

    async def leave(self, room: str) -> None:
        """Stop receiving ``room``'s messages; nothing if not in it. Never raises for an
        engine failure (it is logged)."""
        await self._membership.leave(room)

    @asynccontextmanager
    async def room(self, room: str) -> AsyncIterator[None]:
        """In ``room`` inside the block (see :meth:`join`), out of it after, however it ends."""
        await self.join(room)
        try:
            yield
        finally:
            await self.leave(room)

    # --- sending: pushes, never waiting for the client -----------------------------------------

    def send_text(self, text: str) -> bool:
        """Queue a text frame; False if the connection no longer takes messages."""
        return self._writer.push(text)

    def send_bytes(self, data: bytes) -> bool:
        """Queue a binary frame; False if the connection no longer takes messages."""
        return self._writer.push(data)

    def send_json(self, value: Any) -> bool:
        """Queue ``value`` (anything msgspec encodes) as a JSON text frame; False if the
        connection no longer takes messages.

        Raises:
            TypeError: ``value`` cannot be encoded as JSON.
        """
        return self._writer.push(msgspec.json.encode(value).decode())

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        """Subscriber hook: a room's message for this connection."""
        self._writer.push(message)

    def resync(self, channel: str) -> None:
        """Subscriber hook: a plain socket keeps no position in a room, so there is nothing
        to recover; what a broken link lost is lost (delivery is at most once)."""

    # --- receiving: iterators that end when the connection does --------------------------------

    async def texts(self) -> AsyncIterator[str]:
        """Each text frame; a binary frame closes with ``UNSUPPORTED_DATA``."""
        while (message := await self._receive("text")) is not None:
            assert isinstance(message, str)
            yield message

    async def binaries(self) -> AsyncIterator[bytes]:
        """Each binary frame; a text frame closes with ``UNSUPPORTED_DATA``."""
        while (message := await self._receive("bytes")) is not None:
            assert isinstance(message, bytes)
            yield message

    async def messages(self) -> AsyncIterator[str | bytes]:
        """Each frame, text or binary."""
        while (message := await self._receive("any")) is not None:
            yield message

    async def jsons(self) -> AsyncIterator[Any]:
        """Each text frame parsed as JSON; invalid JSON closes with ``INVALID_PAYLOAD``, a
        binary frame with ``UNSUPPORTED_DATA``."""
        async for text in self.texts():
            try:
                value = _json_decoder.decode(text)
            except msgspec.DecodeError as exc:
                self._reject(CloseCode.INVALID_PAYLOAD, f"invalid JSON: {exc}")
                return
            yield value

    def ignore_incoming(self) -> None:
        """Read and drop whatever the client sends, so a push-only endpoint sees it leave."""
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._drop_incoming())

    async def _drop_incoming(self) -> None:
        while await self._receive("any") is not None:
            pass

    async def _receive(self, expect: Literal["text", "bytes", "any"]) -> str | bytes | None:
        if self.state not in (SocketState.OPEN, SocketState.CLOSING):
            return None
        message = await self._websocket.receive()
        if message["type"] == "websocket.disconnect":
            self.state = SocketState.GONE
            return None
        if self.state is SocketState.CLOSING:
            return None
        text: str | None = message.get("text")
        data: str | bytes = text if text is not None else message.get("bytes") or b""
        if expect == "text" and text is None:
            self._reject(CloseCode.UNSUPPORTED_DATA, "binary frame received, text expected")
            return None
        if expect == "bytes" and text is not None:
            self._reject(CloseCode.UNSUPPORTED_DATA, "text frame received, binary expected")
            return None
        if over_limit(data, self._max_message_bytes):
            self._reject(
                CloseCode.MESSAGE_TOO_BIG,
                f"message too big: limit is {self._max_message_bytes} bytes",
            )
            return None
        return data

    def _reject(self, code: CloseCode, reason: str) -> None:
        client = self._websocket.client
        peer = f"{client.host}:{client.port}" if client else "?"
        logger.info("%s %s: closing with %d (%s)", peer, self.path, code, reason)
        self.close(code, reason)
