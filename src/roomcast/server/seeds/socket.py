"""SeedSocket: a seed endpoint's connection, sending through a Writer and reading with checks.

Written the plain Starlette way, a seed endpoint would call ``websocket.send_text`` and
``receive_text`` directly: one slow client would stall a broadcast, and a binary frame where
text was expected would raise in the handler. Here sends are pushes into the connection's
writer (never waiting for the client), and reads turn bad input into a close with the right
code and reason plus one log line:

- a binary frame where text is expected, or text where binary is:
  ``CloseCode.UNSUPPORTED_DATA`` (1003);
- a text frame that is not valid JSON on a JSON endpoint: ``CloseCode.INVALID_PAYLOAD`` (1007);
- a frame over ``websocket.message_size_limit``: ``CloseCode.MESSAGE_TOO_BIG`` (1009).

A client that reads too slowly for its queue (``client.queue_max_size``) is closed with
``DisconnectCode.SLOW`` (3008), the code the client endpoint uses for the same thing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from enum import Enum
from types import TracebackType
from typing import Any, Literal

import msgspec
from starlette.websockets import WebSocket

from roomcast.errors import StateError
from roomcast.protocol import DisconnectCode
from roomcast.publication import ChannelEvent
from roomcast.transport.asgi import asgi_frame_sender, over_limit, write_now_of
from roomcast.transport.close_codes import CloseCode
from roomcast.wire import WireFormat
from roomcast.writer import Close, Writer

__all__ = ["SeedSocket", "SocketState"]

logger = logging.getLogger("roomcast.seeds")

_json_decoder = msgspec.json.Decoder()


class SocketState(Enum):
    """CONNECTING until accepted; OPEN; CLOSING once this side sent its close; GONE when over."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    GONE = "gone"


class SeedSocket:
    """One seed endpoint connection; use as ``async with SeedSocket(websocket, ...) as ws``.

    Entering accepts the WebSocket and starts the writer. Leaving sends what is queued, then
    closes with ``NORMAL_CLOSURE``, or with ``INTERNAL_ERROR`` if the block raised (a close
    already sent or under way stands), waiting for that at most ``CLOSE_FLUSH_TIMEOUT``
    (5 s), and not at all if the client is gone. A SeedSocket is also a TEXT ``Subscriber``,
    so a Node can deliver room messages to it.
    """

    wire_format = WireFormat.TEXT
    join_leave = False

    def __init__(self, websocket: WebSocket, *, max_queue_bytes: int, max_message_bytes: int):
        self._websocket = websocket
        self._max_message_bytes = max_message_bytes
        self._writer = Writer(
            asgi_frame_sender(websocket.send),
            max_queue_bytes=max_queue_bytes,
            overflow=Close(DisconnectCode.SLOW, "slow consumer: too many unsent messages"),
            write_now=write_now_of(websocket.scope),
        )
        self._reader: asyncio.Task[None] | None = None
        self.state = SocketState.CONNECTING

    @property
    def writer(self) -> Writer:
        """This connection's writer."""
        return self._writer

    @property
    def path(self) -> str:
        """The request path, for log lines."""
        return self._websocket.url.path

    async def __aenter__(self) -> SeedSocket:
        if self.state is not SocketState.CONNECTING:
            raise StateError("accept", expected="connecting", actual=self.state.value)
        await self._websocket.accept()
        self.state = SocketState.OPEN
        self._writer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
        failed = exc is not None and not isinstance(exc, asyncio.CancelledError)
        if failed:
            logger.error("%s failed", self.path, exc_info=exc)
        if self.state is SocketState.GONE:
            self._writer.discard()
            return
        if failed:
            close = Close(CloseCode.INTERNAL_ERROR, "internal server error")
        else:
            close = Close(CloseCode.NORMAL_CLOSURE, "")
        if self.state is SocketState.OPEN:
            self.state = SocketState.CLOSING
        await self._writer.close_and_flush(close)

    # --- sending: pushes, never waiting for the client -------------------------------------

    def send_text(self, text: str) -> None:
        """Queue a text frame."""
        self._writer.push(text)

    def send_bytes(self, data: bytes) -> None:
        """Queue a binary frame."""
        self._writer.push(data)

    def send_json(self, value: Any) -> None:
        """Queue ``value`` as a JSON text frame."""
        self._writer.push(msgspec.json.encode(value).decode())

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        """Subscriber hook: a room message for this connection."""
        self._writer.push(message)

    def resync(self, channel: str) -> None:
        """Subscriber hook: seed rooms keep no history, so there is nothing to recover."""

    def close(self, code: CloseCode, reason: str) -> None:
        """Send what is queued, then close with ``code`` and ``reason``."""
        if self.state is SocketState.OPEN:
            self.state = SocketState.CLOSING
            self._writer.close(Close(code, reason))

    # --- receiving: iterators that end when the connection does ----------------------------

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

    @property
    def open(self) -> bool:
        """Whether messages sent now can still reach the client."""
        return self.state is SocketState.OPEN

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
