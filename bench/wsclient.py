"""A minimal WebSocket client on ``asyncio.Protocol``, cheap enough to hold 5,000 per process.

The load clients must not be the bottleneck on a two-core machine, so this skips everything a
benchmark does not need: no extensions (the servers therefore never compress), no asyncio
task per connection, one ``time.monotonic_ns()`` per ``data_received`` (every frame that arrived
in one read shares that receive time). It frames and unframes, answers WebSocket pings, records
the close code, and hands each complete text or binary message to ``on_message``.

During a dialect's handshake ``on_message`` is left at its default, which queues messages for
:meth:`WsConn.recv`; afterwards the dialect installs its own fast callback.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import os
import socket
import struct
import time
from collections.abc import Callable
from enum import Enum
from typing import Protocol, cast

_apply_mask_c: Callable[[bytes, bytes], bytes] | None
try:
    from websockets.speedups import apply_mask as _c_apply_mask

    _apply_mask_c = _c_apply_mask
except ImportError:  # pragma: no cover - the C extension is optional in websockets
    _apply_mask_c = None

__all__ = ["ConnState", "WsClosedError", "WsConn", "connect", "tcp_state"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}

MessageCallback = Callable[[bytes, int], None]


class WsClosedError(ConnectionError):
    """The connection closed (or never opened) while a caller was waiting on it."""


class ConnState(Enum):
    """Life of one client connection."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


def _mask(payload: bytes, key: bytes) -> bytes:
    if _apply_mask_c is not None:
        return bytes(_apply_mask_c(payload, key))
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 1 << 16:
        head += struct.pack("!BH", 0x80 | 126, n)
    else:
        head += struct.pack("!BQ", 0x80 | 127, n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


class _HasSockopt(Protocol):
    def getsockopt(self, level: int, option: int, buflen: int, /) -> bytes: ...


def tcp_state(sock: _HasSockopt) -> str:
    """The kernel's TCP state of ``sock`` (``ESTABLISHED``, ``CLOSE_WAIT``...), read without I/O.

    Lets the slow-consumer scenario see the server close a connection whose reader is paused.
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return "GONE"
    return _TCP_STATES.get(info[0], str(info[0]))


class WsConn(asyncio.Protocol):
    """One client connection; create it with :func:`connect`."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self._request_line = (host, port, path)
        self._key = base64.b64encode(os.urandom(16))
        self._rest = b""
        self._frag: list[bytes] = []
        self._frag_op = _OP_TEXT
        self._inbox: collections.deque[bytes] = collections.deque()
        self._inbox_waiter: asyncio.Future[None] | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self._paused = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.state = ConnState.HANDSHAKE
        self.on_message: MessageCallback = self._queue_message
        self.close_code: int | None = None
        self.close_reason = ""
        self.received = 0
        """Publications counted by the dialect's callback (kept here to avoid a dict lookup)."""

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        host, port, path = self._request_line
        self.transport.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
            self._rest = b""
        if self.state is ConnState.HANDSHAKE:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._rest = data
                return
            if not self._finish_handshake(data[:end]):
                return
            data = data[end + 4 :]
        self._parse(data, time.monotonic_ns())

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = ConnState.CLOSED
        error = WsClosedError(f"connection lost: {exc or 'EOF'} (close code {self.close_code})")
        for fut in (self.opened, self._inbox_waiter, self._write_waiter):
            if fut is not None and not fut.done():
                fut.set_exception(error)
                fut.exception()  # mark retrieved: nobody may be waiting any more
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    # -- public API ---------------------------------------------------------------------------

    def send(self, payload: bytes, *, binary: bool = False) -> None:
        """Queue one message; call :meth:`drain` to honour the transport's flow control."""
        if self.transport is None or self.state is not ConnState.OPEN:
            raise WsClosedError("send on a connection that is not open")
        self.transport.write(encode_frame(_OP_BINARY if binary else _OP_TEXT, payload))

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if not self._paused:
            return
        if self.state is ConnState.CLOSED:
            raise WsClosedError("connection closed while draining")
        self._write_waiter = asyncio.get_running_loop().create_future()
        await self._write_waiter

    async def recv(self) -> bytes:
        """Next queued message (handshake phase only); callers bound the wait."""
        while not self._inbox:
            if self.state is ConnState.CLOSED:
                raise WsClosedError(f"closed (code {self.close_code}) {self.close_reason}")
            self._inbox_waiter = asyncio.get_running_loop().create_future()
            await self._inbox_waiter
        return self._inbox.popleft()

    def pause_reading(self) -> None:
        """Stop reading from the socket: the kernel buffers fill and the server must cope."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def socket(self) -> _HasSockopt | None:
        """The transport's socket (uvloop hands out a look-alike that supports getsockopt)."""
        if self.transport is None:
            return None
        sock = self.transport.get_extra_info("socket")
        return sock if hasattr(sock, "getsockopt") else None

    def abort(self) -> None:
        """Drop the connection at once (RST): the benchmark never waits on a clean close."""
        if self.transport is not None:
            self.transport.abort()

    # -- internals ----------------------------------------------------------------------------

    def _queue_message(self, payload: bytes, _now: int) -> None:
        self._inbox.append(payload)
        if self._inbox_waiter is not None and not self._inbox_waiter.done():
            self._inbox_waiter.set_result(None)

    def _finish_handshake(self, head: bytes) -> bool:
        """Check the server's 101 response; True when the connection is open."""
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest())
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if len(status) < 2 or status[1] != b"101":
            self._fail(f"handshake refused: {lines[0].decode(errors='replace')}")
            return False
        if headers.get(b"sec-websocket-accept") != accept:
            self._fail("handshake: bad Sec-WebSocket-Accept")
            return False
        self.state = ConnState.OPEN
        self.opened.set_result(None)
        return True

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(WsClosedError(reason))
        self.state = ConnState.CLOSED
        self.abort()

    def _parse(self, data: bytes, now: int) -> None:
        pos, size = 0, len(data)
        while size - pos >= 2:
            b0, b1 = data[pos], data[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:  # servers never mask; treat it as the protocol error it is
                self._fail("server sent a masked frame")
                return
            end = pos + head + length
            if end > size:
                break
            payload = data[pos + head : end]
            pos = end
            opcode = b0 & 0x0F
            if opcode in (_OP_TEXT, _OP_BINARY) and b0 & 0x80:
                self.on_message(payload, now)
            elif opcode <= _OP_BINARY:
                self._fragment(opcode, b0 & 0x80, payload, now)
            else:
                self._control(opcode, payload)
        if pos < size:
            self._rest = data[pos:]

    def _fragment(self, opcode: int, fin: int, payload: bytes, now: int) -> None:
        if opcode != _OP_CONT:
            self._frag_op = opcode
            self._frag = []
        self._frag.append(payload)
        if fin:
            message = b"".join(self._frag)
            self._frag = []
            self.on_message(message, now)

    def _control(self, opcode: int, payload: bytes) -> None:
        if self.transport is None:
            return
        if opcode == _OP_PING:
            self.transport.write(encode_frame(_OP_PONG, payload))
        elif opcode == _OP_CLOSE:
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
                self.close_reason = payload[2:].decode(errors="replace")
            else:
                self.close_code = 1005  # RFC 6455: "no status code was present"
            if self.state is ConnState.OPEN:
                self.state = ConnState.CLOSED
                self.transport.write(encode_frame(_OP_CLOSE, payload[:2]))
            self.transport.close()


async def connect(
    host: str, port: int, path: str, *, rcvbuf: int | None = None, source: str | None = None
) -> WsConn:
    """Open one WebSocket connection and complete the HTTP upgrade (callers bound the wait).

    ``rcvbuf`` sets ``SO_RCVBUF`` before connecting (so the TCP window is negotiated small):
    the slow-consumer scenario uses it to make the kernel buffer fill after a few kilobytes.
    ``source`` binds the local end to that address (any port), so that many thousands of
    connections to one server do not share one address's ephemeral port range.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source is not None:
        sock.bind((source, 0))
    conn: WsConn | None = None
    try:
        await loop.sock_connect(sock, (host, port))
        _, conn = await loop.create_connection(lambda: WsConn(host, port, path), sock=sock)
        await conn.opened
    except BaseException:
        if conn is not None:
            conn.abort()
        else:
            sock.close()
        raise
    return conn
