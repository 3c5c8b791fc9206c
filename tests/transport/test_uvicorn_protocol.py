"""RoomcastWebSocketProtocol inside a real uvicorn server on 127.0.0.1, driven by raw sockets.

The server runs in the test's own event loop with the subclass as ``ws=``, so a test reaches
the protocol object of each connection, and a raw-socket peer decides when (and whether) it
reads. The subclass leans on uvicorn's private state: the first tests fail, naming what
changed, if an uvicorn upgrade renames or retypes any of it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import select
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.server import ServerProtocol

from roomcast.protocol import DisconnectCode
from roomcast.transport.asgi import WRITE_NOW_EXTENSION, stop_server_pings
from roomcast.transport.close_codes import CloseCode
from roomcast.transport.uvicorn_protocol import (
    UVICORN_METHODS,
    UVICORN_STATE,
    RoomcastWebSocketProtocol,
    _EventQueue,
    _Flag,
)
from tests.support.wsclient import connect, recv

TIMEOUT = 5.0
CHUNK = "x" * 65536
TEXT, CLOSE = 0x1, 0x8

Event = MutableMapping[str, Any]


# --- a real uvicorn server in this event loop ------------------------------------------------


@dataclass
class Accepted:
    """One accepted connection: its protocol object and the ASGI callables its app got."""

    protocol: RoomcastWebSocketProtocol
    receive: Callable[[], Awaitable[Event]]
    send: Callable[[Event], Coroutine[Any, Any, None]]
    missing_before_accept: list[str]
    """Names of ``UVICORN_STATE`` the protocol lacked when the app got the connection."""
    handshake_kept_until_accept: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)
    """Set to let the app return."""


class Harness:
    """A uvicorn server whose app accepts every WebSocket and hands it to the test."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[Accepted] = asyncio.Queue()
        self.server: uvicorn.Server | None = None
        self.port = 0
        self._open: list[Accepted] = []

    async def app(self, scope: Event, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        protocol = scope["extensions"][WRITE_NOW_EXTENSION]["write"].__self__
        assert isinstance(protocol, RoomcastWebSocketProtocol)
        missing = [name for name in UVICORN_STATE if not hasattr(protocol, name)]
        kept = getattr(protocol, "request", None) is not None
        kept = kept and getattr(protocol, "response", None) is not None
        await send({"type": "websocket.accept"})
        accepted = Accepted(protocol, receive, send, missing, kept)
        self._open.append(accepted)
        self.accepted.put_nowait(accepted)
        await accepted.done.wait()

    async def next_connection(self) -> Accepted:
        return await asyncio.wait_for(self.accepted.get(), TIMEOUT)

    def release_all(self) -> None:
        for accepted in self._open:
            accepted.done.set()


@asynccontextmanager
async def running(**options: Any) -> AsyncIterator[Harness]:
    harness = Harness()
    config = uvicorn.Config(
        harness.app,
        host="127.0.0.1",
        port=0,
        ws=RoomcastWebSocketProtocol,
        interface="asgi3",
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=5,
        **options,
    )
    server = harness.server = uvicorn.Server(config)
    sock = config.bind_socket()
    harness.port = sock.getsockname()[1]
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done())
        assert server.started, "uvicorn did not start"
        yield harness
    finally:
        harness.release_all()
        server.should_exit = True
        await asyncio.wait_for(task, 3 * TIMEOUT)
        sock.close()


@pytest.fixture
async def served() -> AsyncIterator[Harness]:
    """A server without per-message compression (so ``write_now`` may write)."""
    async with running(ws_per_message_deflate=False) as harness:
        yield harness


async def until(condition: Callable[[], bool], seconds: float = TIMEOUT) -> None:
    """Return once ``condition()`` holds; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        # Protocol state changes on socket events that offer nothing to await.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


# --- a peer on a raw socket, reading only when told to -----------------------------------------


class RawPeer:
    """A WebSocket client on a plain non-blocking socket: it reads only when a test asks."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    @classmethod
    async def connect(cls, port: int, *, receive_buffer: int | None = None) -> RawPeer:
        """Connect and finish the opening handshake; ``receive_buffer`` shrinks SO_RCVBUF."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), TIMEOUT)
        peer = cls(sock)
        await loop.sock_sendall(
            sock,
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        while b"\r\n\r\n" not in peer._buffer:
            await peer._fill()
        response, peer._buffer = peer._buffer.split(b"\r\n\r\n", 1)
        assert response.startswith(b"HTTP/1.1 101 "), response
        return peer

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 20), TIMEOUT)
        if not data:
            raise ConnectionError("the server closed the TCP connection")
        self._buffer += data

    async def _take(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        taken, self._buffer = self._buffer[:size], self._buffer[size:]
        return taken

    async def read_frame(self) -> tuple[int, bytes]:
        """The next frame from the server (unmasked, as server frames are): opcode, payload."""
        first, second = await self._take(2)
        assert not second & 0x80, "a server frame must not be masked"
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self._take(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self._take(8))
        return first & 0x0F, await self._take(size)

    def read_without_the_loop(self) -> bytes:
        """Whatever has arrived, read with the event loop blocked: no task runs meanwhile."""
        ready, _, _ = select.select([self.sock], [], [], TIMEOUT)
        assert ready, f"nothing arrived in {TIMEOUT}s"
        return self.sock.recv(1 << 16)

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        """One masked frame (a client's frames must be), FIN set; payloads up to 125 bytes."""
        assert len(payload) <= 125
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frame = bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked
        await asyncio.get_running_loop().sock_sendall(self.sock, frame)

    async def send_close(self, code: int) -> None:
        await self.send_frame(CLOSE, struct.pack("!H", code))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
async def peers() -> AsyncIterator[list[RawPeer]]:
    """Raw peers to close when the test ends."""
    opened: list[RawPeer] = []
    yield opened
    for peer in opened:
        peer.close()


async def raw_peer(
    harness: Harness, peers: list[RawPeer], *, receive_buffer: int | None = None
) -> tuple[RawPeer, Accepted]:
    peer = await RawPeer.connect(harness.port, receive_buffer=receive_buffer)
    peers.append(peer)
    return peer, await harness.next_connection()


def fill_until_unwritable(protocol: RoomcastWebSocketProtocol) -> int:
    """Write with ``write_now`` until it refuses (the peer is not reading); messages written."""
    sock = protocol.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    for written in range(1000):
        if not protocol.write_now(CHUNK):
            return written
    pytest.fail("write_now never refused, though the peer reads nothing")


def run_without_waiting(step: Coroutine[Any, Any, None]) -> None:
    """Run ``step`` to its end at once; fail if it would wait for anything (the loop never
    runs meanwhile, so nothing else happens on the connection either)."""
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    pytest.fail("it waited")


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


# --- uvicorn's private state, as the subclass expects it ---------------------------------------


async def test_uvicorn_still_has_the_private_state_the_subclass_uses(
    served: Harness, peers: list[RawPeer]
) -> None:
    _, accepted = await raw_peer(served, peers)
    assert accepted.missing_before_accept == []
    protocol = accepted.protocol
    assert protocol.writable.is_set() is True  # the subclass's lighter stand-in for an Event
    assert protocol.ping_interval is None or protocol.ping_interval > 0
    assert isinstance(protocol.conn, ServerProtocol)
    assert isinstance(protocol.close_timeout, float)
    assert isinstance(protocol.loop, asyncio.AbstractEventLoop)
    assert isinstance(protocol.transport, asyncio.Transport)
    assert protocol.close_timer is None
    for flag in ("close_sent", "disconnected", "read_paused"):
        assert getattr(protocol, flag) is False, flag
    assert protocol.handshake_complete is True
    assert isinstance(protocol.scope, dict)
    assert protocol.scope["extensions"][WRITE_NOW_EXTENSION] == {
        "write": protocol.write_now,
        "stop_pings": protocol.stop_pings,
        "unsent": protocol.unsent_bytes,
    }


def test_uvicorn_still_has_the_methods_the_subclass_overrides_and_calls() -> None:
    for name in UVICORN_METHODS:
        assert callable(getattr(WebSocketsSansIOProtocol, name, None)), name


def test_uvicorn_uses_only_the_queue_methods_the_replacement_queue_has() -> None:
    source = inspect.getsource(WebSocketsSansIOProtocol)
    used = set(re.findall(r"self\.queue\.(\w+)", source))
    assert used, "uvicorn no longer reads self.queue: is the replacement still needed?"
    assert used <= {"put_nowait", "get", "empty"}, used


# --- write_now -------------------------------------------------------------------------------


async def test_write_now_writes_one_unmasked_frame_at_once(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers)
    assert accepted.protocol.write_now("hello")
    # The loop has not run since write_now returned, so no task can have written the frame.
    assert peer.read_without_the_loop() == b"\x81\x05hello"
    assert accepted.protocol.write_now(b"\x00\x01")
    assert peer.read_without_the_loop() == b"\x82\x02\x00\x01"


async def test_write_now_refuses_while_the_transport_is_not_writable(
    served: Harness, peers: list[RawPeer]
) -> None:
    _, accepted = await raw_peer(served, peers, receive_buffer=4096)
    protocol = accepted.protocol
    fill_until_unwritable(protocol)
    assert not protocol.writable.is_set()
    buffered = protocol.transport.get_write_buffer_size()
    assert not protocol.write_now("one more")
    assert protocol.transport.get_write_buffer_size() == buffered, "a refused write wrote"


async def test_unsent_bytes_counts_what_a_peer_that_does_not_read_has_not_taken(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers, receive_buffer=4096)
    protocol = accepted.protocol
    assert protocol.unsent_bytes() == 0
    written = fill_until_unwritable(protocol)
    # The kernel's queue and the transport's buffer hold what the peer has not read.
    stuck = protocol.unsent_bytes()
    assert stuck > protocol.transport.get_write_buffer_size()
    assert written > 0
    async with asyncio.timeout(TIMEOUT):
        while protocol.unsent_bytes() > 0:
            try:
                peer.sock.recv(1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.01)
    assert protocol.unsent_bytes() == 0


async def test_write_now_refuses_once_the_close_is_sent_and_after_the_peer_left(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers)
    await accepted.send({"type": "websocket.close", "code": CloseCode.NORMAL_CLOSURE})
    assert not accepted.protocol.write_now("after the close")
    assert await peer.read_frame() == (CLOSE, close_payload(CloseCode.NORMAL_CLOSURE))

    peer, accepted = await raw_peer(served, peers)
    peer.close()  # no close frame: the peer just went away
    assert (await asyncio.wait_for(accepted.receive(), TIMEOUT))["type"] == "websocket.disconnect"
    assert not accepted.protocol.write_now("to nobody")


async def test_write_now_refuses_on_a_compressed_connection() -> None:
    """A negotiated compression frames every message per connection: the ASGI send does it."""
    async with running(ws_per_message_deflate=True) as harness:
        url = f"ws://127.0.0.1:{harness.port}/"
        async with connect(url, compression="deflate") as ws:
            accepted = await harness.next_connection()
            assert accepted.protocol.conn.extensions, "compression was negotiated"
            assert not accepted.protocol.write_now("raw frame")
            await accepted.send({"type": "websocket.send", "text": "compressed"})
            assert await recv(ws) == "compressed"


# --- closing a peer that stopped reading -------------------------------------------------------


async def test_close_to_a_peer_that_stopped_reading_goes_out_at_once_then_aborts(
    served: Harness, peers: list[RawPeer]
) -> None:
    _, accepted = await raw_peer(served, peers, receive_buffer=4096)
    protocol = accepted.protocol
    fill_until_unwritable(protocol)
    protocol.close_timeout = 0.5
    buffered = protocol.transport.get_write_buffer_size()
    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    # uvicorn's own send would wait here until the peer read everything: forever.
    run_without_waiting(accepted.send({"type": "websocket.close"}))
    assert protocol.close_sent
    # The close frame (code 1000, ASGI's default, no reason) is in the buffer behind the data.
    assert protocol.transport.get_write_buffer_size() == buffered + 4
    assert await asyncio.wait_for(accepted.receive(), TIMEOUT) == {
        "type": "websocket.disconnect",
        "code": CloseCode.NORMAL_CLOSURE,
        "reason": "",
    }
    # The peer never answers the close: the connection is aborted after the close timeout,
    # not left to drain a buffer nobody reads.
    await until(lambda: protocol.disconnected)
    assert loop.time() - closed_at >= 0.5 - 0.05


async def test_close_behind_a_full_buffer_reaches_the_peer_when_it_reads_again(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers, receive_buffer=4096)
    protocol = accepted.protocol
    await peer.send_frame(TEXT, b"never read by the app")
    await until(lambda: protocol.read_paused)  # uvicorn stops reading until the app receives
    written = fill_until_unwritable(protocol)
    protocol.close_timeout = 30.0
    close = {"type": "websocket.close", "code": DisconnectCode.SLOW, "reason": "slow"}
    run_without_waiting(accepted.send(close))
    assert not protocol.read_paused, "reading resumed, so the peer's close reply is heard"

    frames = [await peer.read_frame() for _ in range(written + 1)]
    assert frames[:-1] == [(TEXT, CHUNK.encode())] * written
    assert frames[-1] == (CLOSE, close_payload(DisconnectCode.SLOW, "slow"))
    await peer.send_close(DisconnectCode.SLOW)
    # The closing handshake completes long before the 30 s close timeout would abort it.
    await until(lambda: protocol.disconnected)


# --- shutdown and the handshake ---------------------------------------------------------------


async def test_server_shutdown_closes_connections_with_going_away(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers)
    assert served.server is not None
    served.server.should_exit = True
    assert await peer.read_frame() == (
        CLOSE,
        close_payload(CloseCode.GOING_AWAY, "server shutting down"),
    )
    assert await asyncio.wait_for(accepted.receive(), TIMEOUT) == {
        "type": "websocket.disconnect",
        "code": CloseCode.GOING_AWAY,
        "reason": "server shutting down",
    }
    assert accepted.protocol.ping_timer is None, "the keepalive stopped"
    await peer.send_close(CloseCode.GOING_AWAY)
    await until(lambda: accepted.protocol.disconnected)


async def test_shutdown_while_a_peers_close_waits_behind_a_full_buffer(
    served: Harness, peers: list[RawPeer]
) -> None:
    """The peer closed first, and the reply waits behind data it does not read: shutdown
    gives it the close timeout, then aborts, and the server still shuts down."""
    peer, accepted = await raw_peer(served, peers, receive_buffer=4096)
    protocol = accepted.protocol
    fill_until_unwritable(protocol)
    protocol.close_timeout = 0.5
    await peer.send_close(CloseCode.NORMAL_CLOSURE)
    await until(protocol.transport.is_closing)  # uvicorn answered it and closes when drained
    assert served.server is not None
    served.server.should_exit = True
    await until(lambda: protocol.disconnected)
    # The fixture's teardown awaits the server, so a shutdown that raised fails the test.


async def test_an_accepted_connection_drops_its_handshake_request_and_response(
    served: Harness, peers: list[RawPeer]
) -> None:
    _, accepted = await raw_peer(served, peers)
    assert accepted.handshake_kept_until_accept
    assert accepted.protocol.request is None
    assert accepted.protocol.response is None


async def test_incoming_messages_reach_the_app_in_order(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers)
    for text in ("one", "two", "three"):
        await peer.send_frame(TEXT, text.encode())
    got = [await asyncio.wait_for(accepted.receive(), TIMEOUT) for _ in range(3)]
    assert got == [{"type": "websocket.receive", "text": t} for t in ("one", "two", "three")]


# --- bad input -----------------------------------------------------------------------------------


async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007_and_one_log_line(
    served: Harness, peers: list[RawPeer], caplog: pytest.LogCaptureFixture
) -> None:
    peer, accepted = await raw_peer(served, peers)
    caplog.set_level(logging.INFO)
    await peer.send_frame(TEXT, b"\xff\xfe not UTF-8")
    assert await peer.read_frame() == (
        CLOSE,
        close_payload(CloseCode.INVALID_PAYLOAD, "text frame is not valid UTF-8"),
    )
    assert await asyncio.wait_for(accepted.receive(), TIMEOUT) == {
        "type": "websocket.disconnect",
        "code": CloseCode.INVALID_PAYLOAD,
        "reason": "text frame is not valid UTF-8",
    }
    lines = [r for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert lines[0].exc_info is None, "a client's mistake is no traceback"


async def test_a_valid_text_frame_still_reaches_the_app(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers)
    await peer.send_frame(TEXT, "héllo".encode())
    assert await asyncio.wait_for(accepted.receive(), TIMEOUT) == {
        "type": "websocket.receive",
        "text": "héllo",
    }


async def test_a_peer_gone_without_a_close_frame_ends_with_1006(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers)
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()  # a reset: no close frame, as when the client's process or network dies
    assert await asyncio.wait_for(accepted.receive(), TIMEOUT) == {
        "type": "websocket.disconnect",
        "code": CloseCode.ABNORMAL_CLOSURE,
    }


async def test_a_peer_that_closed_properly_ends_with_its_own_code(
    served: Harness, peers: list[RawPeer]
) -> None:
    peer, accepted = await raw_peer(served, peers)
    await peer.send_close(CloseCode.NORMAL_CLOSURE)
    event = await asyncio.wait_for(accepted.receive(), TIMEOUT)
    assert (event["type"], event["code"]) == ("websocket.disconnect", CloseCode.NORMAL_CLOSURE)


PING = 0x9


async def frames_within(peer: RawPeer, seconds: float) -> list[int]:
    """The opcodes of the frames that arrive within ``seconds``."""
    opcodes: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            opcode, _ = await asyncio.wait_for(peer.read_frame(), left)
        except TimeoutError:
            break
        opcodes.append(opcode)
    return opcodes


async def test_an_app_that_pings_its_client_itself_stops_the_servers_pings(
    peers: list[RawPeer],
) -> None:
    async with running(ws_per_message_deflate=False, ws_ping_interval=0.1) as harness:
        pinged, _ = await raw_peer(harness, peers)
        quiet, accepted = await raw_peer(harness, peers)
        stop_server_pings(accepted.protocol.scope)
        assert accepted.protocol.ping_interval is None
        assert PING in await frames_within(pinged, 0.5)  # uvicorn's keepalive, as before
        assert await frames_within(quiet, 0.5) == []
        stop_server_pings({"extensions": {}})  # another server's scope: nothing to stop


async def test_the_handshake_request_keeps_no_headers_once_answered(
    served: Harness, peers: list[RawPeer]
) -> None:
    """websockets' parser keeps the request object alive for the connection's lifetime; its
    headers are dropped once the handshake is answered (the scope keeps its own copy)."""
    _, accepted = await raw_peer(served, peers)
    headers = dict(accepted.protocol.scope["headers"])
    assert headers[b"upgrade"] == b"websocket"
    parser = accepted.protocol.conn.parser
    request = parser.gi_frame.f_locals.get("request") if parser.gi_frame else None
    assert request is not None, "websockets' parser no longer keeps the request: drop the fix"
    assert list(request.headers.raw_items()) == []


async def test_the_event_queue_and_the_writable_flag_behave_as_asyncios() -> None:
    queue = _EventQueue()
    assert queue.empty()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    for item in ("a", "b", "c"):
        queue.put_nowait(item)
    assert await asyncio.wait_for(getter, TIMEOUT) == "a"
    assert [await queue.get(), await queue.get()] == ["b", "c"]
    assert queue.empty()
    queue.put_nowait("d")
    assert not queue.empty()
    assert await queue.get() == "d"

    flag = _Flag()
    assert flag.is_set()
    assert await flag.wait()
    flag.clear()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not any(waiter.done() for waiter in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT) == [True, True]
