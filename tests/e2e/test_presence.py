"""Presence and join/leave end to end: raw ``websockets`` clients speaking the Centrifuge
client protocol v2 (JSON) to a real ``roomcast serve``, and its HTTP server API.

Every wait is bounded: replies and pushes within ``TIMEOUT`` seconds, and the server's
noticing a dead connection within ``DEAD_SOCKET_BOUND`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.protocol_client import ProtocolClient as Client
from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.tokens import SECRET, connection_token

API_KEY = "k"
NAMESPACE = {
    "name": "room",
    "presence": True,
    "join_leave": True,
    "allow_subscribe_for_client": True,
    "allow_presence_for_subscriber": True,
}
FORCED = {
    "name": "lobby",
    "presence": True,
    "join_leave": True,
    "force_push_join_leave": True,
    "allow_subscribe_for_client": True,
}
"""Join/leave pushed to every subscriber; none of them may read presence, so none could ask."""
TIMEOUT = 5.0
DEAD_SOCKET_BOUND = 5.0
"""How long the server may take to notice a connection whose TCP socket was aborted."""
QUIET = 0.3
"""How long to listen for a push that must not come, after a marker that must."""

OpenClient = Callable[[str], Awaitable[Client]]


@pytest.fixture(scope="module")
def presence_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE, FORCED]),
        },
        cwd=tmp_path_factory.mktemp("roomcast-presence"),
    )
    yield running
    running.stop()


@pytest.fixture
def server(presence_server: RunningServer) -> Iterator[RunningServer]:
    """The server; the test fails if it logged a traceback meanwhile."""
    before = len(presence_server.log)
    yield presence_server
    written = presence_server.log[before:]
    assert "Traceback" not in written, written


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.http, headers={"X-API-Key": API_KEY}, timeout=TIMEOUT
    ) as client:
        yield client


async def api_call(api: httpx.AsyncClient, method: str, **params: Any) -> dict[str, Any]:
    response = await api.post(f"/api/{method}", json=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "error" not in body, body
    return body["result"]  # type: ignore[no-any-return]


@pytest.fixture
async def clients(server: RunningServer) -> AsyncIterator[OpenClient]:
    """Opens connected clients for a test and closes them all after it."""
    async with contextlib.AsyncExitStack() as stack:

        async def open_client(user: str) -> Client:
            return await stack.enter_async_context(
                protocol_client(server.ws, token=connection_token(user), user=user)
            )

        yield open_client


def join(client: Client, channel: str) -> dict[str, Any]:
    return {"channel": channel, "join": {"info": {"user": client.user, "client": client.client}}}


def leave(client: Client, channel: str) -> dict[str, Any]:
    return {"channel": channel, "leave": {"info": {"user": client.user, "client": client.client}}}


def strip_info(push: dict[str, Any]) -> dict[str, Any]:
    """A join or leave push with only the user and client of its info, to compare with."""
    kind = "join" if "join" in push else "leave"
    if kind not in push:
        return push
    info = push[kind]["info"]
    return {
        "channel": push["channel"],
        kind: {"info": {"user": info["user"], "client": info["client"]}},
    }


async def next_pushes(client: Client, count: int) -> list[dict[str, Any]]:
    return [strip_info(await client.next_push()) for _ in range(count)]


async def presence_of(
    client: Client, api: httpx.AsyncClient, channel: str
) -> tuple[dict[str, str], dict[str, int]]:
    """Presence (client id -> user) and stats, as ``client`` sees them; the server API must
    say the same."""
    entries = (await client.call("presence", channel=channel))["presence"]
    stats = await client.call("presence_stats", channel=channel)
    api_entries = (await api_call(api, "presence", channel=channel))["presence"]
    api_stats = await api_call(api, "presence_stats", channel=channel)
    for key, info in entries.items():
        assert info["client"] == key, entries
    seen = {key: info["user"] for key, info in entries.items()}
    assert {key: info["user"] for key, info in api_entries.items()} == seen, api_entries
    counts = {"clients": stats.get("num_clients", 0), "users": stats.get("num_users", 0)}
    api_counts = {
        "clients": api_stats.get("num_clients", 0),
        "users": api_stats.get("num_users", 0),
    }
    assert api_counts == counts, api_stats
    return seen, counts


async def eventually_presence(
    client: Client, api: httpx.AsyncClient, channel: str, expected: dict[str, str]
) -> dict[str, int]:
    """Poll presence until it equals ``expected``, for at most ``DEAD_SOCKET_BOUND``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEAD_SOCKET_BOUND
    while True:
        seen, counts = await presence_of(client, api, channel)
        if seen == expected or loop.time() > deadline:
            assert seen == expected
            return counts
        await asyncio.sleep(0.05)


async def test_presence_and_join_leave_across_three_clients_of_two_users(
    clients: OpenClient, api: httpx.AsyncClient
) -> None:
    channel = f"room:{uuid.uuid4().hex[:12]}"
    alice1 = await clients("alice")
    alice2 = await clients("alice")
    bob = await clients("bob")

    for client in (alice1, alice2, bob):
        await client.call("subscribe", channel=channel, join_leave=True)
    # Each subscriber that asked for join/leave sees every join from its own on, in order.
    assert await next_pushes(alice1, 3) == [
        join(alice1, channel),
        join(alice2, channel),
        join(bob, channel),
    ]
    assert await next_pushes(alice2, 2) == [join(alice2, channel), join(bob, channel)]
    assert await next_pushes(bob, 1) == [join(bob, channel)]

    seen, counts = await presence_of(alice1, api, channel)
    assert seen == {alice1.client: "alice", alice2.client: "alice", bob.client: "bob"}
    assert counts == {"clients": 3, "users": 2}

    await alice2.call("unsubscribe", channel=channel)
    assert await next_pushes(alice1, 1) == [leave(alice2, channel)]
    assert await next_pushes(bob, 1) == [leave(alice2, channel)]
    seen, counts = await presence_of(alice1, api, channel)
    assert seen == {alice1.client: "alice", bob.client: "bob"}
    assert counts == {"clients": 2, "users": 2}

    # Bob's network fails: the TCP connection is dropped with no closing handshake.
    bob.ws.transport.abort()
    assert await next_pushes(alice1, 1) == [leave(bob, channel)]
    counts = await eventually_presence(alice1, api, channel, {alice1.client: "alice"})
    assert counts == {"clients": 1, "users": 1}

    # Nothing else came: no join or leave twice, nothing for the one that left.
    await api_call(api, "publish", channel=channel, data={"marker": 1})
    marker = await alice1.next_push()
    assert marker["pub"]["data"] == {"marker": 1}, marker
    assert await alice1.pushes_within(QUIET) == []
    assert await alice2.pushes_within(QUIET) == []


async def test_join_leave_only_for_subscribers_that_asked(
    clients: OpenClient, api: httpx.AsyncClient
) -> None:
    channel = f"room:{uuid.uuid4().hex[:12]}"
    carol = await clients("carol")
    dave = await clients("dave")
    erin = await clients("erin")

    await carol.call("subscribe", channel=channel)
    await dave.call("subscribe", channel=channel, join_leave=True)
    await erin.call("subscribe", channel=channel, join_leave=True)
    await erin.call("unsubscribe", channel=channel)
    assert await next_pushes(dave, 3) == [
        join(dave, channel),
        join(erin, channel),
        leave(erin, channel),
    ]
    # Carol did not ask: the first push she gets is the publication that follows them all.
    await api_call(api, "publish", channel=channel, data={"marker": 2})
    marker = await carol.next_push()
    assert marker == {"channel": channel, "pub": marker.get("pub")}, marker
    assert marker["pub"]["data"] == {"marker": 2}
    assert strip_info(await dave.next_push())["pub"]["data"] == {"marker": 2}
    assert await carol.pushes_within(QUIET) == []
    assert await dave.pushes_within(QUIET) == []

    # Her presence counts all the same.
    seen, counts = await presence_of(carol, api, channel)
    assert seen == {carol.client: "carol", dave.client: "dave"}
    assert counts == {"clients": 2, "users": 2}


async def test_force_push_join_leave_reaches_subscribers_that_did_not_ask(
    clients: OpenClient, api: httpx.AsyncClient
) -> None:
    channel = f"lobby:{uuid.uuid4().hex[:12]}"
    gina = await clients("gina")
    hank = await clients("hank")

    await gina.call("subscribe", channel=channel)
    await hank.call("subscribe", channel=channel)
    await hank.call("unsubscribe", channel=channel)
    assert await next_pushes(gina, 3) == [
        join(gina, channel),
        join(hank, channel),
        leave(hank, channel),
    ]
    assert await next_pushes(hank, 1) == [join(hank, channel)]
    await api_call(api, "publish", channel=channel, data={"marker": 3})
    assert (await gina.next_push())["pub"]["data"] == {"marker": 3}
    assert await gina.pushes_within(QUIET) == []
    assert await hank.pushes_within(QUIET) == []


async def test_presence_is_refreshed_past_its_ttl_while_connected(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Entries expire ``engine.presence_ttl`` after their last refresh; a live connection
    refreshes them every ``client.presence_update_interval``, so it stays present."""
    running = start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE]),
            "ROOMCAST_ENGINE__PRESENCE_TTL": "1s",
            "ROOMCAST_CLIENT__PRESENCE_UPDATE_INTERVAL": "200ms",
        },
        cwd=tmp_path_factory.mktemp("roomcast-presence-ttl"),
    )
    try:
        async with httpx.AsyncClient(
            base_url=running.http, headers={"X-API-Key": API_KEY}, timeout=TIMEOUT
        ) as api:
            token = connection_token("frank")
            async with protocol_client(running.ws, token=token, user="frank") as frank:
                channel = f"room:{uuid.uuid4().hex[:12]}"
                await frank.call("subscribe", channel=channel)
                await asyncio.sleep(2.5)  # two and a half TTLs
                seen, counts = await presence_of(frank, api, channel)
                assert seen == {frank.client: "frank"}
                assert counts == {"clients": 1, "users": 1}
                await frank.call("unsubscribe", channel=channel)
                entries = (await api_call(api, "presence", channel=channel))["presence"]
                assert entries == {}
    finally:
        running.stop()
    assert "Traceback" not in running.log, running.log
