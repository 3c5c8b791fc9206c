"""The client protocol on the wire: a raw ``websockets`` client speaking JSON lines to
``/connection/websocket`` of a real ``roomcast serve``.

A frame from the server may hold several replies and pushes separated by ``\\n`` (the writer
coalesces what is queued), so every frame is split into lines before parsing. Each bad input
is checked for its close code and reason, for a second, already connected client that keeps
working, and for a server log without tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from roomcast.protocol import protobuf
from roomcast.protocol.protobuf_schema import message_classes
from tests.support.server import RunningServer, start_server
from tests.support.tokens import SECRET, connection_token, subscription_token
from tests.support.wsclient import TIMEOUT, closed_with, connect

MESSAGE_SIZE_LIMIT = 16384
QUEUE_MAX_SIZE = 262144
PING_INTERVAL = 1.0
PONG_TIMEOUT = 1.0
STALE_CLOSE_DELAY = 1.0
NAMESPACES = [
    {"name": "chat", "allow_subscribe_for_client": True, "allow_publish_for_client": True}
]
BASE_ENV = {
    "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
    "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
}

Message = dict[str, Any]


# --- servers ------------------------------------------------------------------------------------


def _serve(tmp: Path, **env: str) -> RunningServer:
    return start_server("--no-examples", env={**BASE_ENV, **env}, cwd=tmp)


@pytest.fixture(scope="module")
def _main(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Default keepalive (25 s pings, so idle raw clients live), small frame and queue limits."""
    server = _serve(
        tmp_path_factory.mktemp("main"),
        ROOMCAST_WEBSOCKET__MESSAGE_SIZE_LIMIT=str(MESSAGE_SIZE_LIMIT),
        ROOMCAST_CLIENT__QUEUE_MAX_SIZE=str(QUEUE_MAX_SIZE),
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _timing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Fast timers: pings every second, one second to answer, one second to send connect."""
    server = _serve(
        tmp_path_factory.mktemp("timing"),
        ROOMCAST_CLIENT__PING_INTERVAL=str(PING_INTERVAL),
        ROOMCAST_CLIENT__PONG_TIMEOUT=str(PONG_TIMEOUT),
        ROOMCAST_CLIENT__STALE_CLOSE_DELAY=str(STALE_CLOSE_DELAY),
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def _evil_allowed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server that lists a foreign origin in ``client.allowed_origins``."""
    server = _serve(
        tmp_path_factory.mktemp("origins"),
        ROOMCAST_CLIENT__ALLOWED_ORIGINS='["http://evil.example"]',
    )
    yield server
    server.stop()


def _checked(server: RunningServer) -> Iterator[RunningServer]:
    before = len(server.log)
    yield server
    written = server.log[before:]
    assert "Traceback" not in written, written
    assert "ERROR" not in written, written


@pytest.fixture
def main(_main: RunningServer) -> Iterator[RunningServer]:
    """The main server; the test fails if it logged a traceback or an error meanwhile."""
    yield from _checked(_main)


@pytest.fixture
def timing(_timing: RunningServer) -> Iterator[RunningServer]:
    """The fast-timer server; the test fails if it logged a traceback or an error meanwhile."""
    yield from _checked(_timing)


@pytest.fixture
def evil_allowed(_evil_allowed: RunningServer) -> Iterator[RunningServer]:
    yield from _checked(_evil_allowed)


# --- a raw protocol client -------------------------------------------------------------------


def endpoint(server: RunningServer) -> str:
    return f"{server.ws}/connection/websocket"


def lines(frame: str | bytes) -> list[Message]:
    """Every JSON object in one server frame."""
    text = frame.decode() if isinstance(frame, bytes) else frame
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def connect_command(user: str = "alice", id: int = 1) -> Message:
    return {"id": id, "connect": {"token": connection_token(user, expires_in=None)}}


class Peer:
    """A protocol client whose reader task splits frames into messages and, if asked to, answers
    every server ping ``{}`` at once (recording when it came) instead of returning it."""

    def __init__(self, ws: ClientConnection, *, answer_pings: bool = True) -> None:
        self.ws = ws
        self.answer_pings = answer_pings
        self.pings: list[float] = []
        self._messages: asyncio.Queue[Message] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                for message in lines(frame):
                    if message == {} and self.answer_pings:
                        self.pings.append(time.monotonic())
                        await self.ws.send("{}")
                    else:
                        self._messages.put_nowait(message)
        except ConnectionClosed:
            pass

    async def send(self, *commands: Message | str) -> None:
        """Send ``commands`` (dicts, or raw text lines) in one frame, joined by newlines."""
        await self.ws.send("\n".join(c if isinstance(c, str) else json.dumps(c) for c in commands))

    async def next(self, seconds: float = TIMEOUT) -> Message:
        try:
            return await asyncio.wait_for(self._messages.get(), seconds)
        except TimeoutError:
            pytest.fail(f"no message from the server in {seconds}s")

    async def take(self, count: int, seconds: float = TIMEOUT) -> list[Message]:
        return [await self.next(seconds) for _ in range(count)]

    async def closed(self, seconds: float = TIMEOUT) -> tuple[int, str]:
        """Wait for the server to close; its close code and reason. Nothing else may arrive."""
        await asyncio.wait_for(asyncio.shield(self._reader), seconds)
        assert self._messages.empty(), f"unexpected before the close: {self._messages}"
        assert self.ws.close_code is not None, "the connection ended without a close frame"
        return self.ws.close_code, self.ws.close_reason or ""

    async def publish_roundtrip(self, channel: str, data: Any, id: int) -> None:
        """Publish into a channel this peer subscribes to; get the push and the reply."""
        await self.send({"id": id, "publish": {"channel": channel, "data": data}})
        got = await self.take(2)
        assert got[0]["push"]["channel"] == channel
        assert got[0]["push"]["pub"]["data"] == data
        assert got[1] == {"id": id, "publish": {}}

    async def aclose(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@asynccontextmanager
async def peer(
    server: RunningServer, *, answer_pings: bool = True, **options: Any
) -> AsyncIterator[Peer]:
    ws = await asyncio.wait_for(connect(endpoint(server), **options), TIMEOUT)
    p = Peer(ws, answer_pings=answer_pings)
    try:
        yield p
    finally:
        await p.aclose()


@asynccontextmanager
async def connected_peer(
    server: RunningServer, user: str = "alice", channel: str | None = None
) -> AsyncIterator[Peer]:
    """A peer that has connected as ``user`` and, if given, subscribed to ``channel``."""
    async with peer(server, max_size=None) as p:
        await p.send(connect_command(user))
        reply = await p.next()
        assert reply["id"] == 1, reply
        assert reply["connect"]["client"]
        if channel is not None:
            await p.send({"id": 2, "subscribe": {"channel": channel}})
            assert await p.next() == {"id": 2, "subscribe": {}}
        yield p


@asynccontextmanager
async def bystander(server: RunningServer) -> AsyncIterator[Peer]:
    """A connected, subscribed client that must keep working whatever another client does."""
    async with connected_peer(server, "bystander", "chat:bystander") as p:
        await p.publish_roundtrip("chat:bystander", {"before": True}, id=3)
        yield p
        await p.publish_roundtrip("chat:bystander", {"after": True}, id=4)


# --- well-formed traffic -----------------------------------------------------------------------


async def test_batched_commands_get_every_reply_in_order(main: RunningServer) -> None:
    async with peer(main) as p:
        await p.send(
            connect_command("alice", id=1),
            {"id": 2, "subscribe": {"channel": "chat:batch"}},
            {"id": 3, "publish": {"channel": "chat:batch", "data": {"n": 1}}},
            {"id": 4, "rpc": {"method": "nothing.here", "data": {}}},
            {"id": 5, "unsubscribe": {"channel": "chat:batch"}},
        )
        connected, *rest = await p.take(6)
        client = connected["connect"]["client"]
        assert connected == {
            "id": 1,
            "connect": {
                "client": client,
                "version": connected["connect"]["version"],
                "ping": 25,
                "pong": True,
            },
        }
        assert rest == [
            {"id": 2, "subscribe": {}},
            {
                "push": {
                    "channel": "chat:batch",
                    "pub": {"data": {"n": 1}, "info": {"user": "alice", "client": client}},
                }
            },
            {"id": 3, "publish": {}},
            {"id": 4, "error": {"code": 104, "message": "method not found"}},
            {"id": 5, "unsubscribe": {}},
        ]


async def test_a_reused_id_is_answered_twice_in_order(main: RunningServer) -> None:
    """The server does not track command ids: each command is answered with the id it
    carried, so two commands with one id get two replies with that id, in command order.
    Telling them apart is the client's business (the SDKs never reuse an id)."""
    async with connected_peer(main) as p:
        await p.send(
            {"id": 7, "rpc": {"method": "nothing.here"}},
            {"id": 7, "publish": {"channel": "chat:ids", "data": 1}},
        )
        assert await p.take(2) == [
            {"id": 7, "error": {"code": 104, "message": "method not found"}},
            {"id": 7, "publish": {}},
        ]
        await p.send({"id": 7, "subscribe": {"channel": "chat:ids"}})
        assert await p.next() == {"id": 7, "subscribe": {}}


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("connect_first", "frame", "reason"),
    [
        pytest.param(
            True, '{"id": 2, "frobnicate": {}}', "bad request: unknown method", id="unknown-method"
        ),
        pytest.param(True, '{"id": 2, "publish": ', "bad request: ", id="malformed-json"),
        pytest.param(False, "[1, 2, 3]", "bad request: ", id="not-an-object"),
        pytest.param(
            False,
            '{"id": 1, "subscribe": {"channel": "chat:x"}}',
            "bad request: first command must be connect",
            id="before-connect",
        ),
        pytest.param(
            True,
            json.dumps(connect_command(id=2)),
            "bad request: already connected",
            id="second-connect",
        ),
        pytest.param(True, "{}", "bad request: pong without ping", id="unsolicited-pong"),
        pytest.param(
            True,
            '{"publish": {"channel": "chat:x", "data": 1}}',
            "bad request: publish command without id",
            id="no-id",
        ),
        pytest.param(
            True,
            b'{"id": 2, "publish": {"channel": "chat:x", "data": "\xff"}}',
            "bad request: frame is not valid UTF-8",
            id="invalid-utf8",
        ),
    ],
)
async def test_bad_request_closes_with_3501(
    main: RunningServer, connect_first: bool, frame: str | bytes, reason: str
) -> None:
    async with bystander(main), peer(main) as p:
        if connect_first:
            await p.send(connect_command())
            assert (await p.next())["id"] == 1
        await (p.ws.send(frame) if isinstance(frame, bytes) else p.send(frame))
        code, got_reason = await p.closed()
        assert code == 3501
        assert got_reason.startswith(reason), got_reason
        assert len(got_reason) > len("bad request: "), "the reason names the problem"


async def test_replies_before_a_bad_command_arrive_before_the_close(main: RunningServer) -> None:
    """A frame is handled in order: what precedes the unknown method is answered, then the
    connection closes. (A line that is not valid JSON drops its whole frame instead.)"""
    async with connected_peer(main) as p:
        await p.send(
            {"id": 2, "publish": {"channel": "chat:x", "data": 1}},
            '{"id": 3, "frobnicate": {}}',
            {"id": 4, "publish": {"channel": "chat:x", "data": 2}},
        )
        assert await p.next() == {"id": 2, "publish": {}}
        assert await p.closed() == (3501, "bad request: unknown method")


async def test_protobuf_subprotocol_is_named_in_the_reply_and_spoken(main: RunningServer) -> None:
    """A binary frame of two length-delimited commands (connect, then a bad subscribe) gets
    their two replies; the protocol's own checks hold in Protobuf too."""
    command = message_classes()["Command"]
    hello = command(id=1)
    hello.connect.token = connection_token("alice")
    subscribe = command(id=2)
    subscribe.subscribe.channel = "nowhere:x"
    frame = b"".join(
        protobuf.varint(m.ByteSize()) + m.SerializeToString() for m in (hello, subscribe)
    )
    async with connect(endpoint(main), subprotocols=[Subprotocol("centrifuge-protobuf")]) as ws:
        assert ws.subprotocol == "centrifuge-protobuf"
        await ws.send(frame)
        replies: list[Any] = []
        while len(replies) < 2:
            data = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert isinstance(data, bytes)
            replies += _replies(data)
        assert replies[0].id == 1
        assert replies[0].connect.client
        assert (replies[1].id, replies[1].error.code) == (2, 102)
        await ws.send("not binary")
        assert await closed_with(ws) == (
            3501,
            "bad request: the protobuf protocol takes binary frames, not text",
        )


def _replies(frame: bytes) -> list[Any]:
    reply, found, pos = message_classes()["Reply"], [], 0
    while pos < len(frame):
        size, shift = 0, 0
        while frame[pos] & 0x80:
            size |= (frame[pos] & 0x7F) << shift
            shift, pos = shift + 7, pos + 1
        size |= frame[pos] << shift
        pos += 1
        found.append(reply.FromString(frame[pos : pos + size]))
        pos += size
    return found


async def test_an_unknown_subprotocol_is_named_back_and_closed_with_3506(
    main: RunningServer,
) -> None:
    async with bystander(main), connect(endpoint(main), subprotocols=[Subprotocol("mqtt")]) as ws:
        assert ws.subprotocol == "mqtt"
        code, reason = await closed_with(ws)
        assert code == 3506
        assert "centrifuge-protobuf" in reason


async def test_format_protobuf_in_the_query_speaks_protobuf(main: RunningServer) -> None:
    async with connect(f"{main.ws}/connection/websocket?format=protobuf") as ws:
        assert ws.subprotocol is None
        connect_command = message_classes()["Command"](id=1)
        connect_command.connect.token = connection_token("bob")
        body = connect_command.SerializeToString()
        await ws.send(protobuf.varint(len(body)) + body)
        [reply] = _replies(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert reply.connect.client


async def test_frame_over_the_size_limit_closes_with_1009(main: RunningServer) -> None:
    async with bystander(main), connected_peer(main) as p:
        data = "x" * MESSAGE_SIZE_LIMIT
        await p.send({"id": 2, "publish": {"channel": "chat:big", "data": data}})
        code, _ = await p.closed()
        assert code == 1009


async def test_frame_at_the_size_limit_is_accepted(main: RunningServer) -> None:
    async with connected_peer(main) as p:
        command: Message = {"id": 2, "publish": {"channel": "chat:big", "data": ""}}
        overhead = len(json.dumps(command))
        command["publish"]["data"] = "x" * (MESSAGE_SIZE_LIMIT - overhead)
        assert len(json.dumps(command)) == MESSAGE_SIZE_LIMIT
        await p.send(command)
        assert await p.next() == {"id": 2, "publish": {}}


# --- token lifetimes ----------------------------------------------------------------------------


async def test_token_lifetimes_are_announced_and_extended(main: RunningServer) -> None:
    """``expires``/``ttl`` in the connect, refresh, subscribe and sub_refresh replies tell the
    client when to refresh; a token for someone else ends the connection."""
    async with peer(main) as p:
        await p.send({"id": 1, "connect": {"token": connection_token("alice", expires_in=60)}})
        connected = (await p.next())["connect"]
        assert connected["expires"] is True
        assert 58 <= connected["ttl"] <= 60

        await p.send({"id": 2, "refresh": {"token": connection_token("alice", expires_in=120)}})
        refreshed = await p.next()
        assert refreshed == {
            "id": 2,
            "refresh": {
                "client": connected["client"],
                "version": connected["version"],
                "expires": True,
                "ttl": refreshed["refresh"]["ttl"],
            },
        }
        assert 118 <= refreshed["refresh"]["ttl"] <= 120

        token = subscription_token("alice", "$doc", expires_in=60)
        await p.send({"id": 3, "subscribe": {"channel": "$doc", "token": token}})
        subscribed = await p.next()
        assert subscribed["id"] == 3
        assert subscribed["subscribe"]["expires"] is True
        assert 58 <= subscribed["subscribe"]["ttl"] <= 60

        token = subscription_token("alice", "$doc", expires_in=120)
        await p.send({"id": 4, "sub_refresh": {"channel": "$doc", "token": token}})
        sub_refreshed = await p.next()
        assert sub_refreshed["id"] == 4
        assert sub_refreshed["sub_refresh"]["expires"] is True
        assert 118 <= sub_refreshed["sub_refresh"]["ttl"] <= 120

        await p.send({"id": 5, "refresh": {"token": connection_token("mallory")}})
        assert await p.closed() == (3500, "invalid token")


# --- keepalive and timeouts ----------------------------------------------------------------------


async def test_server_pings_at_the_interval_and_pongs_keep_the_connection(
    timing: RunningServer,
) -> None:
    async with connected_peer(timing, channel="chat:keepalive") as p:
        connected_at = time.monotonic()
        deadline = connected_at + 3 * PING_INTERVAL + TIMEOUT
        while len(p.pings) < 3:
            assert time.monotonic() < deadline, f"pings so far: {p.pings}"
            await asyncio.sleep(0.05)
        gaps = [b - a for a, b in zip([connected_at, *p.pings], p.pings, strict=False)]
        # Each ping comes one interval after the connect reply or the previous pong.
        assert all(0.8 * PING_INTERVAL <= gap <= PING_INTERVAL + 0.8 for gap in gaps), gaps
        await p.publish_roundtrip("chat:keepalive", "alive", id=3)


async def test_client_silent_before_connect_is_closed_as_stale(timing: RunningServer) -> None:
    async with bystander(timing), peer(timing) as p:
        started = time.monotonic()
        code, reason = await p.closed(seconds=STALE_CLOSE_DELAY + TIMEOUT)
        assert (code, reason) == (3502, "stale: no connect command in time")
        assert time.monotonic() - started >= STALE_CLOSE_DELAY - 0.2


# --- origins ------------------------------------------------------------------------------------


async def test_foreign_origin_is_refused_at_the_handshake(main: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await asyncio.wait_for(
            connect(endpoint(main), origin=Origin("http://evil.example")), TIMEOUT
        )
    assert refused.value.response.status_code == 403


async def test_same_origin_is_accepted(main: RunningServer) -> None:
    same = Origin(f"http://{main.host}:{main.port}")
    async with peer(main, origin=same) as p:
        await p.send(connect_command())
        assert (await p.next())["id"] == 1


async def test_listed_origin_is_accepted(evil_allowed: RunningServer) -> None:
    async with peer(evil_allowed, origin=Origin("http://evil.example")) as p:
        await p.send(connect_command())
        assert (await p.next())["id"] == 1
    with pytest.raises(InvalidStatus) as refused:
        await asyncio.wait_for(
            connect(endpoint(evil_allowed), origin=Origin("http://other.example")), TIMEOUT
        )
    assert refused.value.response.status_code == 403


# --- slow consumers -----------------------------------------------------------------------------


WINDOW = 32
"""How many publications the healthy subscriber may be behind the publisher."""


def _small_buffer_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock


async def test_slow_subscriber_is_cut_off_and_the_healthy_one_gets_everything(
    main: RunningServer,
) -> None:
    channel, count, pad = "chat:flood", 1500, "x" * 4000
    assert WINDOW * len(pad) < QUEUE_MAX_SIZE / 2
    async with (
        connected_peer(main, "healthy", channel) as healthy,
        connected_peer(main, "publisher") as publisher,
    ):
        slow = await asyncio.wait_for(
            connect(endpoint(main), sock=_small_buffer_socket(main.host, main.port), max_size=None),
            TIMEOUT,
        )
        try:
            await slow.send(json.dumps(connect_command("slow")))
            await slow.send(json.dumps({"id": 2, "subscribe": {"channel": channel}}))
            replies: list[Message] = []
            while len(replies) < 2:
                replies += lines(await asyncio.wait_for(slow.recv(), TIMEOUT))
            assert [r["id"] for r in replies] == [1, 2]
            slow.transport.pause_reading()

            received: list[Message] = []
            for n in range(count):
                await publisher.send(
                    {"id": n + 10, "publish": {"channel": channel, "data": {"n": n, "pad": pad}}}
                )
                # A healthy subscriber keeps up: never more than WINDOW publications behind.
                # (The test process both publishes and reads; unpaced, its reader could fall
                # behind by more than the queue limit and be cut off as slow, rightly.)
                if n >= WINDOW:
                    received.append(await healthy.next())
            received += await healthy.take(WINDOW)
            assert [m["push"]["pub"]["data"]["n"] for m in received] == list(range(count))
            answered = [m["id"] for m in await publisher.take(count)]
            assert answered == [n + 10 for n in range(count)]

            slow.transport.resume_reading()
            assert await closed_with(slow, seconds=15.0) == (3008, "slow")
            await healthy.publish_roundtrip(channel, "after", id=3)
        finally:
            slow.transport.abort()


# --- how a connection's end reaches on_disconnect (in-process, fake ASGI) ---------------------


class FakeASGI:
    """The server side of one connection as ``serve_client`` sees it: what the client sends
    is put in ``incoming``, what the endpoint sends is recorded in ``sent``."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.incoming.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, event: Any) -> None:
        self.sent.append(dict(event))

    def client_sends(self, command: dict[str, Any]) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(command)})

    def client_leaves(self, code: int, reason: str = "") -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})


@asynccontextmanager
async def hub_hearing_disconnects() -> AsyncIterator[tuple[Any, list[tuple[int, str]]]]:
    from roomcast import ClientContext, Hub, Settings

    hub = Hub(Settings.load(client={"insecure": True}, engine={"history": "memory://"}))
    heard: list[tuple[int, str]] = []

    @hub.on_disconnect
    async def disconnect(client: ClientContext, code: int, reason: str) -> None:
        heard.append((code, reason))

    await hub.start()
    try:
        yield hub, heard
    finally:
        await hub.stop()


async def serve(hub: Any, asgi: FakeASGI) -> None:
    from roomcast.transport.client_endpoint import serve_client

    scope = {"type": "websocket", "path": "/connection/websocket", "headers": []}
    await asyncio.wait_for(
        serve_client(scope, asgi.receive, asgi.send, hub.services, None), TIMEOUT
    )


async def test_a_clean_close_is_heard_with_the_clients_code() -> None:
    async with hub_hearing_disconnects() as (hub, heard):
        asgi = FakeASGI()
        asgi.client_sends({"id": 1, "connect": {}})
        asgi.client_leaves(1000, "bye")
        await serve(hub, asgi)
    assert heard == [(1000, "bye")]


async def test_a_dead_tcp_connection_is_heard_as_1006() -> None:
    async with hub_hearing_disconnects() as (hub, heard):
        asgi = FakeASGI()
        asgi.client_sends({"id": 1, "connect": {}})
        asgi.client_leaves(1006)
        await serve(hub, asgi)
    assert heard == [(1006, "")]


async def test_the_servers_own_close_is_what_on_disconnect_hears() -> None:
    async with hub_hearing_disconnects() as (hub, heard):
        asgi = FakeASGI()
        asgi.client_sends({"id": 1, "connect": {}})
        asgi.client_sends({"id": 2, "nonsense": {}})  # ends with 3501 bad request
        asgi.client_leaves(3501, "bad request: unknown method")  # the client's echo
        await serve(hub, asgi)
    assert heard == [(3501, "bad request: unknown method")]


async def test_a_crash_of_the_connection_loop_is_heard_once_as_1011(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from roomcast.session.connection import Session

    original = Session.handle
    calls = 0

    async def crashing(self: Session, frame: str | bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("a bug in the loop")
        await original(self, frame)

    monkeypatch.setattr(Session, "handle", crashing)
    async with hub_hearing_disconnects() as (hub, heard):
        asgi = FakeASGI()
        asgi.client_sends({"id": 1, "connect": {}})
        asgi.client_sends({"id": 2, "rpc": {"method": "x"}})
        with pytest.raises(RuntimeError, match="a bug in the loop"):
            await serve(hub, asgi)
        assert hub.registry.num_clients == 0
    assert heard == [(1011, "internal server error")]
    assert asgi.sent[-1] == {
        "type": "websocket.close",
        "code": 1011,
        "reason": "internal server error",
    }


async def test_a_connection_that_never_connected_is_not_heard() -> None:
    async with hub_hearing_disconnects() as (hub, heard):
        asgi = FakeASGI()
        asgi.client_leaves(1000)
        await serve(hub, asgi)
    assert heard == []


@pytest.mark.parametrize("release", [True, False])
async def test_the_handshake_headers_are_released_only_when_asked(release: bool) -> None:
    from roomcast.transport.client_endpoint import serve_client

    async with hub_hearing_disconnects() as (hub, heard):
        asgi = FakeASGI()
        asgi.client_sends({"id": 1, "connect": {}})
        asgi.client_leaves(1000, "bye")
        headers = [(b"host", b"example.test"), (b"user-agent", b"x" * 500)]
        scope = {"type": "websocket", "path": "/connection/websocket", "headers": headers}
        await asyncio.wait_for(
            serve_client(
                scope, asgi.receive, asgi.send, hub.services, None, release_headers=release
            ),
            TIMEOUT,
        )
    assert asgi.sent[0]["type"] == "websocket.accept"
    assert heard == [(1000, "bye")]
    assert scope["headers"] == ([] if release else headers)
