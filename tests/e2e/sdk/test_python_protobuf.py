"""centrifuge-python speaking Protobuf (``use_protobuf=True``) against a real server.

The SDK asks for the ``centrifuge-protobuf`` subprotocol and from then on sends and reads
binary frames of length-delimited messages; payloads are bytes both ways. The server is an
app embedding a Hub (``tests.support.binary_app``: the server API, RPC ``echo`` and ``kind``)
under roomcast's WebSocket protocol. The scenarios are the JSON SDK tests' own: a round trip
with the publisher's info, presence, history, RPC, a connection token refreshed through
``get_token``, and recovery after the TCP connection died; plus what binary payloads become
for JSON subscribers of the same channel. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from centrifuge import (  # type: ignore[import-untyped]  # no py.typed in 0.7
    Client,
    ClientState,
    JoinContext,
    LeaveContext,
    ReplyError,
)

from tests.e2e.sdk.test_centrifuge_python import ClientEvents, TokenSource
from tests.e2e.sdk.test_centrifuge_python import SubEvents as _SubEvents
from tests.support.python_sdk import Feed, cut_link, give_link_back, sdk_client
from tests.support.server import ROOMCAST_PROTOCOL, RunningServer, start_app
from tests.support.tcp_proxy import proxy_to
from tests.support.tokens import SECRET, connection_token
from tests.support.wsclient import connect, recv

TIMEOUT = 10.0
API_KEY = "k"
NAMESPACES = [
    {"name": "chat", "allow_subscribe_for_client": True, "allow_publish_for_client": True},
    {
        "name": "room",
        "allow_subscribe_for_client": True,
        "presence": True,
        "join_leave": True,
        "history_size": 10,
        "history_ttl": "60s",
        "allow_presence_for_subscriber": True,
        "allow_history_for_subscriber": True,
        "allow_publish_for_subscriber": True,
    },
    {
        "name": "news",
        "allow_subscribe_for_client": True,
        "history_size": 1000,
        "history_ttl": "300s",
        "force_recovery": True,
        "allow_publish_for_client": True,
    },
]
ENV = {
    "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
    "ROOMCAST_CLIENT__PING_INTERVAL": "1",
    "ROOMCAST_CLIENT__PONG_TIMEOUT": "1",
    "ROOMCAST_CLIENT__EXPIRED_CLOSE_DELAY": "1",
    "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
    "ROOMCAST_ENGINE__URL": "memory://",
    "ROOMCAST_HTTP_API__KEY": API_KEY,
}
NOT_JSON = b"\x00\xffbinary\x80"


class SubEvents(_SubEvents):
    """A subscription's events, join and leave included."""

    async def on_join(self, ctx: JoinContext) -> None:
        self.record("join", ctx)

    async def on_leave(self, ctx: LeaveContext) -> None:
        self.record("leave", ctx)


@pytest.fixture(scope="module")
def app_server() -> Iterator[RunningServer]:
    server = start_app("tests.support.binary_app:app", *ROOMCAST_PROTOCOL, env=ENV)
    yield server
    server.stop()


@pytest.fixture
def server(app_server: RunningServer) -> Iterator[RunningServer]:
    """The module's server; the test fails if it printed a traceback or an error meanwhile."""
    before = len(app_server.log)
    yield app_server
    written = app_server.log[before:]
    assert "Traceback" not in written, written
    assert "ERROR" not in written, written


@asynccontextmanager
async def connected(
    server: RunningServer, user: str, **options: Any
) -> AsyncIterator[tuple[Client, ClientEvents]]:
    """A Protobuf client connected as ``user``."""
    options.setdefault("token", connection_token(user))
    events = ClientEvents()
    client = Client(
        f"{server.ws}/connection/websocket",
        events=events,
        proxy=None,
        timeout=TIMEOUT,
        use_protobuf=True,
        **options,
    )
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        await events.next("connected", TIMEOUT)
        yield client, events
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def subscribed(client: Client, channel: str, **options: Any) -> tuple[Any, SubEvents]:
    events = SubEvents()
    sub = client.new_subscription(channel, events=events, **options)
    await asyncio.wait_for(sub.subscribe(), TIMEOUT)
    await events.next("subscribed", TIMEOUT)
    return sub, events


async def api(server: RunningServer, method: str, body: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        response = await http.post(
            f"{server.http}/api/{method}", json=body, headers={"X-API-Key": API_KEY}
        )
    answer: dict[str, Any] = response.json()
    assert "error" not in answer, answer
    return answer


def channel_in(namespace: str) -> str:
    return f"{namespace}:{uuid.uuid4().hex[:12]}"


# --- round trip ---------------------------------------------------------------------------------


async def test_publication_round_trip_with_the_publishers_info(server: RunningServer) -> None:
    bob_token = connection_token("bob", info={"color": "blue"})
    async with (
        connected(server, "alice") as (alice, events),
        connected(server, "bob", token=bob_token) as (bob, _),
    ):
        assert alice.state is ClientState.CONNECTED
        channel = channel_in("chat")
        _, feed = await subscribed(alice, channel)
        await asyncio.wait_for(bob.publish(channel, b'{"text":"hi"}'), TIMEOUT)
        got = await feed.next("publication", TIMEOUT)
        assert got.pub.data == b'{"text":"hi"}'
        assert (got.pub.info.user, got.pub.info.client) == ("bob", bob.client_id)
        assert json.loads(got.pub.info.conn_info) == {"color": "blue"}
        await asyncio.wait_for(bob.publish(channel, NOT_JSON), TIMEOUT)
        binary = await feed.next("publication", TIMEOUT)
        assert binary.pub.data == NOT_JSON  # the very bytes, without roomcast's binary tag
        assert binary.pub.tags in ({}, None)
        assert events.seen["error"] == []


async def test_json_subscribers_get_binary_publications_as_tagged_base64(
    server: RunningServer,
) -> None:
    """One channel, both encodings: a Protobuf client's bytes that are not JSON reach a JSON
    client as the base64 string tagged ``roomcast.binary``; JSON reaches both alike."""
    channel = channel_in("chat")
    async with (
        connected(server, "alice") as (alice, _),
        connect(f"{server.ws}/connection/websocket") as ws,
    ):
        await ws.send(json.dumps({"id": 1, "connect": {"token": connection_token("json")}}))
        assert "connect" in json.loads(await recv(ws))
        await ws.send(json.dumps({"id": 2, "subscribe": {"channel": channel}}))
        assert json.loads(await recv(ws)) == {"id": 2, "subscribe": {}}
        await asyncio.wait_for(alice.publish(channel, NOT_JSON), TIMEOUT)
        await asyncio.wait_for(alice.publish(channel, b'{"n":1}'), TIMEOUT)
        pushes = []
        while len(pushes) < 2:
            pushes += [json.loads(line) for line in (await recv(ws)).split("\n")]
        first, second = (push["push"]["pub"] for push in pushes)
        assert first["data"] == base64.b64encode(NOT_JSON).decode()
        assert first["tags"] == {"roomcast.binary": "base64"}
        assert second["data"] == {"n": 1}
        assert "tags" not in second


async def test_b64data_through_the_server_api_reaches_protobuf_clients_as_bytes(
    server: RunningServer,
) -> None:
    async with connected(server, "alice") as (alice, _):
        channel = channel_in("chat")
        _, feed = await subscribed(alice, channel)
        await api(
            server, "publish", {"channel": channel, "b64data": base64.b64encode(NOT_JSON).decode()}
        )
        await api(server, "publish", {"channel": channel, "data": {"from": "api"}})
        assert (await feed.next("publication", TIMEOUT)).pub.data == NOT_JSON
        assert json.loads((await feed.next("publication", TIMEOUT)).pub.data) == {"from": "api"}


# --- presence, history, join and leave ----------------------------------------------------------


async def test_presence_history_and_join_leave(server: RunningServer) -> None:
    channel = channel_in("room")
    async with connected(server, "alice") as (alice, _), connected(server, "bob") as (bob, _):
        alice_sub, alice_feed = await subscribed(alice, channel, join_leave=True)
        bob_sub, _ = await subscribed(bob, channel)
        joins = [(await alice_feed.next("join", TIMEOUT)).info.user for _ in range(2)]
        assert joins == ["alice", "bob"]  # her own join first, as Centrifugo pushes it
        presence = await asyncio.wait_for(alice_sub.presence(), TIMEOUT)
        assert sorted(info.user for info in presence.clients.values()) == ["alice", "bob"]
        stats = await asyncio.wait_for(bob_sub.presence_stats(), TIMEOUT)
        assert (stats.num_clients, stats.num_users) == (2, 2)
        await asyncio.wait_for(alice_sub.publish(b'{"n":0}'), TIMEOUT)
        await asyncio.wait_for(alice_sub.publish(NOT_JSON), TIMEOUT)
        history = await asyncio.wait_for(bob_sub.history(limit=10), TIMEOUT)
        assert [p.data for p in history.publications] == [b'{"n":0}', NOT_JSON]
        assert [p.offset for p in history.publications] == [1, 2]
        assert (history.offset, bool(history.epoch)) == (2, True)
        await asyncio.wait_for(bob_sub.unsubscribe(), TIMEOUT)
        leave = await alice_feed.next("leave", TIMEOUT)
        assert leave.info.user == "bob"


# --- RPC ----------------------------------------------------------------------------------------


async def test_rpc_with_json_and_with_bytes(server: RunningServer) -> None:
    async with connected(server, "alice") as (client, _):
        echoed = await asyncio.wait_for(client.rpc("echo", b'{"x":1}'), TIMEOUT)
        assert json.loads(echoed.data) == {"x": 1}
        assert (await asyncio.wait_for(client.rpc("kind", b'{"x":1}'), TIMEOUT)).data == b'"dict"'
        assert (await asyncio.wait_for(client.rpc("kind", NOT_JSON), TIMEOUT)).data == b'"bytes"'
        assert (await asyncio.wait_for(client.rpc("echo", NOT_JSON), TIMEOUT)).data == NOT_JSON
        with pytest.raises(ReplyError) as caught:
            await asyncio.wait_for(client.rpc("nothing", b"{}"), TIMEOUT)
        assert (caught.value.code, caught.value.message) == (104, "method not found")
        assert client.state is ClientState.CONNECTED


# --- token refresh ------------------------------------------------------------------------------


async def test_connection_token_is_refreshed_through_get_token(server: RunningServer) -> None:
    fresh = TokenSource(lambda: connection_token("alice", expires_in=2))
    token = connection_token("alice", expires_in=2)
    async with connected(server, "alice", token=token, get_token=fresh) as (client, events):
        await fresh.wait_calls(2, seconds=8.0)
        await asyncio.sleep(1.5)  # past the first token's expiry and its close delay
        channel = channel_in("chat")
        await asyncio.wait_for(client.publish(channel, b'"still here"'), TIMEOUT)
        assert client.state is ClientState.CONNECTED
        assert events.seen["connecting"][1:] == []
        assert events.seen["error"] == []


async def test_expired_token_is_replaced_and_pings_are_answered(server: RunningServer) -> None:
    fresh = TokenSource(lambda: connection_token("alice"))
    expired = connection_token("alice", expires_in=-60)
    async with connected(server, "alice", token=expired, get_token=fresh) as (client, events):
        assert fresh.calls == 1
        [error] = events.seen["error"]
        assert (error.error.code, error.error.message) == (109, "token expired")
        await asyncio.sleep(3.5)  # three pings at 1 s, each answered within the 1 s timeout
        assert client.state is ClientState.CONNECTED
        assert events.seen["connecting"][1:] == []


# --- recovery -----------------------------------------------------------------------------------


async def test_recovery_after_the_tcp_connection_died(server: RunningServer) -> None:
    channel = channel_in("news")
    async with (
        proxy_to(server.port) as relay,
        sdk_client(relay, connection_token("reader"), use_protobuf=True) as (client, events),
        connected(server, "writer") as (writer, _),
    ):
        feed = Feed()
        sub = client.new_subscription(channel, events=feed)
        await asyncio.wait_for(sub.subscribe(), TIMEOUT)
        first = await feed.subscribed_times(1)
        assert (first.recoverable, first.positioned) == (True, True)
        for seq in range(1, 4):
            await asyncio.wait_for(
                writer.publish(channel, json.dumps({"seq": seq}).encode()), TIMEOUT
            )
        await feed.received(3)
        await cut_link(client, events, relay)
        for seq in range(4, 54):
            await asyncio.wait_for(
                writer.publish(channel, json.dumps({"seq": seq}).encode()), TIMEOUT
            )
        await give_link_back(events, relay)
        again = await feed.subscribed_times(2)
        assert (again.was_recovering, again.recovered) == (True, True)
        await asyncio.wait_for(writer.publish(channel, b'{"seq": 54}'), TIMEOUT)
        await feed.received(54)
        assert feed.seqs == list(range(1, 55))
        assert feed.offsets == list(range(1, 55))
        assert feed.errors == []
