"""uvicorn's sans-I/O WebSocket protocol with the five changes roomcast needs from its server.

1. It offers the app a synchronous write (the ``roomcast.write_now`` ASGI extension): a
   text or binary message is framed once (server frames are unmasked, so every recipient of
   a publication gets the same bytes) and written to the transport at once when it is
   writable, without a task switch or an ASGI round trip per recipient.
2. A close sent while the peer has stopped reading is not queued behind the full write buffer
   (uvicorn waits for the buffer to drain before any send, so a slow consumer could never be
   closed): the close frame is appended to the transport's buffer at once and, if the peer
   does not finish the closing handshake within the close timeout, the connection is aborted.
3. A connection keeps less: the handshake's request and response are let go once the
   connection is accepted, and incoming events wait in a deque rather than an
   ``asyncio.Queue`` (whose three deques alone cost more than a kilobyte per connection).
4. Server shutdown closes connections with ``GOING_AWAY`` (1001) instead of uvicorn's 1012
   (service restart), so clients know to reconnect elsewhere rather than to the same address.
   A connection whose peer closed first, its answer stuck behind a buffer the peer does not
   read, gets the close timeout and is then aborted (uvicorn's own shutdown raises on it).
5. A text frame that is not UTF-8 is a client's mistake, answered with ``INVALID_PAYLOAD``
   (1007) and a reason, and logged in one line, where uvicorn logs a traceback and closes
   without a reason; and a connection whose TCP link died without a close frame ends, for
   the app, with ``ABNORMAL_CLOSURE`` (1006), where uvicorn says 1005 (the code of an empty
   close frame), so ``on_disconnect`` can tell a dead client from one that closed.

``roomcast serve`` installs this class. An app embedding roomcast gets it with
``uvicorn APP --ws roomcast:RoomcastWebSocketProtocol --ws-per-message-deflate false`` (uvicorn
imports a ``--ws`` value of the form ``module:attribute``) or with
``gunicorn APP -k roomcast.workers.UvicornWorker``; on any other server a slow consumer's writer
still stops queueing, but its socket waits for the server, and the first connection logs a
warning saying so (``transport.asgi.write_now_of``).

The class reads and writes uvicorn's private state (:data:`UVICORN_STATE`) and overrides or
calls its private methods (:data:`UVICORN_METHODS`), so ``pyproject.toml`` pins uvicorn to the
minor version ``tests/transport/test_uvicorn_protocol.py`` checks these names against.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import termios
from collections import deque
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Data

from roomcast.transport.asgi import WRITE_NOW_EXTENSION
from roomcast.transport.close_codes import CloseCode

__all__ = ["UVICORN_METHODS", "UVICORN_STATE", "RoomcastWebSocketProtocol"]

logger = logging.getLogger("roomcast.transport")

UVICORN_STATE: Final = (
    "close_sent",
    "close_timeout",
    "close_timer",
    "conn",
    "curr_msg_data_type",
    "disconnected",
    "frames",
    "handshake_complete",
    "loop",
    "ping_interval",
    "queue",
    "read_paused",
    "request",
    "response",
    "scope",
    "transport",
    "writable",
)
"""Instance attributes of uvicorn's ``WebSocketsSansIOProtocol`` this class relies on."""

UVICORN_METHODS: Final = (
    "connection_lost",
    "handle_connect",
    "handle_parser_exception",
    "receive",
    "send",
    "send_receive_event_to_app",
    "shutdown",
    "stop_keepalive",
)
"""Methods of uvicorn's ``WebSocketsSansIOProtocol`` this class overrides, calls or feeds."""


class _FrameCache:
    """The last message framed and its frame: a fan-out frames each publication once."""

    __slots__ = ("frame", "message")

    def __init__(self) -> None:
        self.message: Data | None = None
        self.frame = b""

    def frame_of(self, message: Data) -> bytes:
        if isinstance(message, str):
            frame = Frame(Opcode.TEXT, message.encode())
        else:
            frame = Frame(Opcode.BINARY, bytes(message))
        self.frame = frame.serialize(mask=False)
        self.message = message
        return self.frame


_FRAMES: Final = _FrameCache()
"""One cache for the process: every connection writes the same frame of a publication."""


class _EventQueue:
    """The part of ``asyncio.Queue`` uvicorn uses (``put_nowait``, ``get``, ``empty``), for
    one reader: unbounded, FIFO. The first item waits in a slot of its own and a deque is
    made only while more than one waits, so an idle connection holds no deque."""

    __slots__ = ("_first", "_has_first", "_rest", "_waiter")

    def __init__(self) -> None:
        self._first: Any = None
        self._has_first = False
        self._rest: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        if not self._has_first:
            self._first, self._has_first = item, True
        elif self._rest is None:
            self._rest = deque((item,))
        else:
            self._rest.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._has_first:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item, rest = self._first, self._rest
        if rest:
            self._first = rest.popleft()
            if not rest:
                self._rest = None
        else:
            self._first, self._has_first = None, False
        return item

    def empty(self) -> bool:
        return not self._has_first


class _Flag:
    """The part of ``asyncio.Event`` uvicorn uses for ``writable`` (``set``, ``clear``,
    ``is_set``, ``wait``), holding no deque: a list of waiters exists only while someone
    waits."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter
        return True


class RoomcastWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with a synchronous write, a prompt close for peers that
    stopped reading, less per-connection state, and ``GOING_AWAY`` at server shutdown."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _EventQueue()  # type: ignore[assignment]
        self._writable_flag = self.writable = _Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The handshake has been answered (uvicorn keeps its response) and the scope holds
        # the headers: the request's own copy would live on, for the connection's lifetime,
        # in the frame of websockets' parser generator.
        event.headers = Headers()
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][WRITE_NOW_EXTENSION] = {
                "write": self.write_now,
                "stop_pings": self.stop_pings,
                "unsent": self.unsent_bytes,
            }

    def unsent_bytes(self) -> int:
        """Bytes written and not yet taken by the peer: the transport's buffer plus the
        kernel's send queue (its unacknowledged and unsent bytes; 0 where it cannot be
        read). Never raises."""
        unsent = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                unsent += struct.unpack("i", queued)[0]
            except (OSError, ValueError):
                pass  # not a TCP socket here, or closed: the transport's buffer alone
        return unsent

    def stop_pings(self) -> None:
        """Stop, for good, the WebSocket pings uvicorn sends this connection: the app pings
        its client itself (the Centrifuge protocol's pings)."""
        self.ping_interval = None
        self.stop_keepalive()

    def write_now(self, message: Data) -> bool:
        """Write one whole message now if the connection is open and writable; else False.

        Never raises and never waits; a False asks the caller to use the ASGI send, which
        waits for the transport to drain.
        """
        if (
            self.close_sent
            or self.disconnected
            or not self._writable_flag._set
            or self.conn.state is not State.OPEN
            or self.conn.extensions  # a negotiated compression makes frames per connection
        ):
            return False
        frames = _FRAMES
        self.transport.write(
            frames.frame if message is frames.message else frames.frame_of(message)
        )
        return True

    async def send(self, message: Any) -> None:
        if (
            message["type"] == "websocket.close"
            and self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and not self.writable.is_set()
        ):
            code = int(message.get("code", CloseCode.NORMAL_CLOSURE))  # ASGI's default
            self._close_now(code, message.get("reason") or "")
            return
        await super().send(message)
        if message["type"] == "websocket.accept":
            # Needed only to answer the handshake, which has been answered now.
            self.request = self.response = None  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handshake_complete and self.conn.close_rcvd is None and not self.close_sent:
            # Queued before uvicorn's own 1005, so the app reads this one first.
            self.queue.put_nowait(
                {"type": "websocket.disconnect", "code": CloseCode.ABNORMAL_CLOSURE}
            )
        super().connection_lost(exc)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent and not _utf8(self.frames):
            self.frames = []
            client = self.scope.get("client") or ("?", 0)
            logger.info(
                "%s:%s %s: closing with %d (a text frame that is not UTF-8)",
                *client,
                self.scope.get("path", ""),
                CloseCode.INVALID_PAYLOAD,
            )
            self.conn.send_close(CloseCode.INVALID_PAYLOAD, "text frame is not valid UTF-8")
            self.handle_parser_exception()  # tells the app, sends the close, ends the link
            return
        super().send_receive_event_to_app()

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and not self.disconnected:
            if self.conn.state is State.OPEN:
                self.stop_keepalive()
                self._close_now(CloseCode.GOING_AWAY, "server shutting down")
                return
            if self.conn.state is State.CLOSING:
                # The peer closed first and the answer waits behind a buffer it does not read.
                # A second close would raise (uvicorn's own shutdown does, and stops shutting
                # the other connections down): give the peer the close timeout, then abort.
                self.stop_keepalive()
                if self.close_timer is None:
                    self.close_timer = self.loop.call_later(
                        self.close_timeout, self.transport.abort
                    )
                return
        super().shutdown()

    def _close_now(self, code: int, reason: str) -> None:
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)


def _utf8(frames: list[bytes]) -> bool:
    """Whether the frames of one message join into valid UTF-8."""
    try:
        (frames[0] if len(frames) == 1 else b"".join(frames)).decode()
    except UnicodeDecodeError:
        return False
    return True
