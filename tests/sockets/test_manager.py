"""``roomcast.sockets`` as an app's own endpoints use it (``tests/support/rooms_api_app.py``
under uvicorn with roomcast's protocol), driven by real clients: ``websockets`` for the plain
sockets, the raw Centrifuge protocol client for SDK subscribers of the same channels.

Rooms are channels: what a plain socket's endpoint broadcasts reaches SDK subscribers and the
other way round (text as a JSON string, bytes as tagged base64, JSON as JSON); presence lists
plain sockets beside SDK clients; a room's namespace decides presence and join/leave. A
second process on the same Redis shows "from anywhere": its broadcasts reach the first's
sockets, and the first's presence vanishes from it after the engine's TTL once killed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.protocol_client import protocol_client
from tests.support.server import ROOMCAST_PROTOCOL, RunningServer, start_app
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.wsclient import TIMEOUT, closed_with, connect, recv, recv_until

PRESENCE_TTL = 1.0
REFRESH_EVERY = 0.3
NAMESPACES = [
    {"name": "lobby", "presence": True, "join_leave": True, "force_push_join_leave": True},
    {"name": "quiet"},
]
APP_ENV = {
    "ROOMCAST_CLIENT__INSECURE": "true",  # SDK clients may subscribe and publish anywhere
    "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
    "ROOMCAST_ENGINE__PRESENCE_TTL": str(PRESENCE_TTL),
    "ROOMCAST_CLIENT__PRESENCE_UPDATE_INTERVAL": str(REFRESH_EVERY),
    "ROOMCAST_ENGINE__HISTORY": "memory://",
}


def start(env: dict[str, str] | None = None) -> RunningServer:
    return start_app(
        "tests.support.rooms_api_app:app", *ROOMCAST_PROTOCOL, env={**APP_ENV, **(env or {})}
    )


@pytest.fixture(scope="module")
def app_server() -> Iterator[RunningServer]:
    server = start()
    yield server
    server.stop()


@pytest.fixture
def served(app_server: RunningServer) -> Iterator[RunningServer]:
    """The app; the test fails if it logged a traceback meanwhile."""
    before = len(app_server.log)
    yield app_server
    assert "Traceback" not in app_server.log[before:], app_server.log[before:]


def is_event(message: dict[str, Any], room: str, kind: str, user: str) -> bool:
    """Whether ``message`` is a ``kind`` (join, leave) push of ``user`` in ``room``."""
    push = message.get("push", {})
    return push.get("channel") == room and push.get(kind, {}).get("info", {}).get("user") == user


async def presence_of(server: RunningServer, room: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        return await http.get(f"{server.http}/presence/{room}")


# --- one room, two kinds of client ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "plain_gets", "sdk_data", "sdk_tags"),
    [
        ("hello", "hello", "hello", None),
        ('json:{"a": [1, 2]}', '{"a":[1,2]}', {"a": [1, 2]}, None),
        ("json:42", "42", 42, None),
        (
            b"\x00\x01binary",
            b"\x00\x01binary",
            base64.b64encode(b"\x00\x01binary").decode(),
            {"roomcast.binary": "base64"},
        ),
        (
            "bytes:text as bytes",
            b"text as bytes",
            base64.b64encode(b"text as bytes").decode(),
            {"roomcast.binary": "base64"},
        ),
    ],
    ids=["text", "json-object", "json-number", "binary-frame", "bytes"],
)
async def test_a_broadcast_reaches_plain_sockets_and_sdk_subscribers(
    served: RunningServer,
    sent: str | bytes,
    plain_gets: str | bytes,
    sdk_data: object,
    sdk_tags: dict[str, str] | None,
) -> None:
    room = f"mixed-{abs(hash(sent))}"
    async with (
        connect(f"{served.ws}/rooms/{room}") as sender,
        connect(f"{served.ws}/rooms/{room}") as other,
        protocol_client(served.ws) as sdk,
    ):
        await sdk.subscribe(room)
        await sender.send(sent)
        assert await recv(other) == plain_gets
        assert await recv(sender) == plain_gets
        pub = await sdk.push(room, "pub")
        assert pub["data"] == sdk_data
        assert pub.get("tags") == sdk_tags


async def test_an_sdk_publication_reaches_the_plain_sockets(served: RunningServer) -> None:
    async with (
        connect(f"{served.ws}/rooms/both-ways") as plain,
        protocol_client(served.ws) as sdk,
    ):
        await sdk.subscribe("both-ways")
        await plain.send("ready?")  # once it hears itself, the socket is in the room
        await recv_until(plain, lambda m: m == "ready?")
        await sdk.call("publish", channel="both-ways", data={"from": "sdk"})
        await sdk.call("publish", channel="both-ways", data="just text")
        # The JSON text as the publisher wrote it: data travels undecoded.
        assert json.loads(await recv(plain)) == {"from": "sdk"}
        assert await recv(plain) == "just text"


async def test_an_ordinary_endpoint_broadcasts_to_a_room(served: RunningServer) -> None:
    async with connect(f"{served.ws}/rooms/news") as plain:
        await plain.send("in?")
        await recv_until(plain, lambda m: m == "in?")
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            reply = await http.post(f"{served.http}/broadcast/news", content=b"from HTTP")
        assert reply.status_code == 200
        assert await recv(plain) == "from HTTP"


# --- presence and join/leave ---------------------------------------------------------------------


async def test_presence_lists_plain_sockets_and_sdk_clients(served: RunningServer) -> None:
    room = "lobby:presence"
    async with protocol_client(served.ws) as sdk:
        await sdk.subscribe(room)
        async with connect(f"{served.ws}/rooms/{room}?user=ann"):
            joined = await sdk.next(lambda m: is_event(m, room, "join", "ann"))
            join = joined["push"]["join"]
            assert join["info"]["conn_info"] == {"via": "plain"}
            listed = (await presence_of(served, room)).json()
            assert sorted(user for user, _ in listed.values()) == ["", "ann"]
            assert [info for user, info in listed.values() if user == "ann"] == [{"via": "plain"}]
            # The SDK's own presence call sees the plain socket too.
            seen = await sdk.call("presence", channel=room)
            assert {c["user"] for c in seen["presence"].values()} == {"", "ann"}
            # Refreshed like a session's entries: still there well past the TTL.
            await asyncio.sleep(PRESENCE_TTL * 2.5)
            still = (await presence_of(served, room)).json()
            assert "ann" in [user for user, _ in still.values()]
        await sdk.next(lambda m: is_event(m, room, "leave", "ann"))
        after = (await presence_of(served, room)).json()
        assert [user for user, _ in after.values()] == [""]


async def test_presence_of_a_room_without_it_is_refused_with_the_option_named(
    served: RunningServer,
) -> None:
    reply = await presence_of(served, "quiet:room")
    assert reply.status_code == 400
    assert "presence" in reply.json()["error"]
    assert "quiet:room" in reply.json()["error"]


# --- joining and leaving rooms ------------------------------------------------------------------


async def test_a_socket_joins_and_leaves_rooms_as_it_goes(served: RunningServer) -> None:
    async with (
        connect(f"{served.ws}/dynamic") as mover,
        connect(f"{served.ws}/rooms/r1") as r1,
        connect(f"{served.ws}/rooms/r2") as r2,
    ):
        await mover.send("join r1")
        assert await recv(mover) == "r1"
        await mover.send("join r2")
        assert await recv(mover) == "r1,r2"
        await r1.send("to r1")
        assert await recv(mover) == "to r1"
        await mover.send("leave r1")
        assert await recv_until(mover, lambda m: m == "r2") == "r2"
        await r1.send("r1 again")
        await r2.send("to r2")
        assert await recv(mover) == "to r2", "a room left sends nothing more"
        await mover.send("block r3")
        assert await recv(mover) == "in r3"
        await mover.send("end")
        assert await recv(mover) == "r2"


# --- when things go wrong -------------------------------------------------------------------------


async def test_an_exception_in_the_block_closes_with_1011_and_is_logged_once(
    app_server: RunningServer,
) -> None:
    before = len(app_server.log)
    async with connect(f"{app_server.ws}/rooms/crashes") as watcher:
        await watcher.send("watching")
        await recv_until(watcher, lambda m: m == "watching")
        async with connect(f"{app_server.ws}/crash") as victim:
            await victim.send("boom")
            assert await closed_with(victim) == (1011, "internal server error")
        # The endpoint goes on after its block, as after any end of the connection.
        assert await recv(watcher) == "after the crash"
    written = app_server.log[before:]
    assert written.count("Traceback") == 1, written
    assert "the endpoint's bug, on purpose" in written


async def test_a_room_that_is_no_channel_closes_with_1011(app_server: RunningServer) -> None:
    async with connect(f"{app_server.ws}/bad-room") as ws:
        assert await closed_with(ws) == (1011, "could not join a room")


# --- another process on the same engine -----------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    engine = SHARED_ENGINES["redis"]
    engine.require("the cross-process test of roomcast.sockets")
    prefix = unique_prefix()
    yield engine.url(prefix)
    engine.cleanup(prefix)


async def test_a_second_process_broadcasts_and_sees_presence_until_the_ttl(
    redis_url: str,
) -> None:
    one = start({"ROOMCAST_ENGINE__URL": redis_url, "ROOMCAST_ENGINE__HISTORY": ""})
    other = start({"ROOMCAST_ENGINE__URL": redis_url, "ROOMCAST_ENGINE__HISTORY": ""})
    try:
        async with connect(f"{one.ws}/rooms/lobby:far?user=zoe") as plain:
            listed = (await presence_of(other, "lobby:far")).json()
            assert [user for user, _ in listed.values()] == ["zoe"]
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                for _ in range(50):  # the first node's subscription may still be on its way
                    await http.post(f"{other.http}/broadcast/lobby:far", content=b"far away")
                    try:
                        assert await recv(plain, 0.2) == "far away"
                        break
                    except TimeoutError:
                        continue
                else:
                    pytest.fail("the other process's broadcast never arrived")
            one.process.send_signal(signal.SIGKILL)  # no leave, no presence removal
            await asyncio.to_thread(one.process.wait, TIMEOUT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PRESENCE_TTL + 3.0
        while (await presence_of(other, "lobby:far")).json():
            assert loop.time() < deadline, "the dead process's entry outlived the TTL"
            await asyncio.sleep(0.1)
    finally:
        one.stop()
        other.stop()
