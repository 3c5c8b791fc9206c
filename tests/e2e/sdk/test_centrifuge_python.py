"""The official Python SDK (``centrifuge-python``) against a real ``roomcast serve``.

Each test drives one or more ``centrifuge.Client`` objects and asserts what the SDK reports
through its event handlers, so the server's replies, pushes and close codes are checked the
way an application sees them. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from centrifuge import (  # type: ignore[import-untyped]  # no py.typed in 0.7
    Client,
    ClientEventHandler,
    ClientState,
    ConnectedContext,
    ConnectingContext,
    DisconnectedContext,
    ErrorContext,
    PublicationContext,
    ReplyError,
    ServerPublicationContext,
    ServerSubscribedContext,
    ServerUnsubscribedContext,
    SubscribedContext,
    SubscribingContext,
    Subscription,
    SubscriptionErrorContext,
    SubscriptionEventHandler,
    SubscriptionState,
    UnsubscribedContext,
)

from tests.e2e.sdk.conftest import (
    EXPIRED_CLOSE_DELAY,
    EXPIRED_SUB_CLOSE_DELAY,
    PING_INTERVAL,
    PONG_TIMEOUT,
)
from tests.support.server import RunningServer
from tests.support.tokens import connection_token, subscription_token
from tests.support.wsclient import closed_with, connect, recv

TIMEOUT = 5.0
"""The longest any single expected event may take."""

QUIET = 0.5
"""How long to watch for something that must not happen (a reconnect, a publication)."""


class Recorder:
    """Records every event an SDK handler receives, by kind, and lets a test wait for the next."""

    def __init__(self) -> None:
        self.seen: dict[str, list[Any]] = defaultdict(list)
        self._queues: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)

    def record(self, kind: str, ctx: Any) -> None:
        self.seen[kind].append(ctx)
        self._queues[kind].put_nowait(ctx)

    async def next(self, kind: str, seconds: float = TIMEOUT) -> Any:
        """The next ``kind`` event not yet returned, or fail after ``seconds``."""
        try:
            return await asyncio.wait_for(self._queues[kind].get(), seconds)
        except TimeoutError:
            pytest.fail(f"no {kind} event in {seconds}s; seen: {dict(self.seen)}")


class ClientEvents(Recorder, ClientEventHandler):  # type: ignore[misc]
    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.record("connecting", ctx)

    async def on_connected(self, ctx: ConnectedContext) -> None:
        self.record("connected", ctx)

    async def on_disconnected(self, ctx: DisconnectedContext) -> None:
        self.record("disconnected", ctx)

    async def on_error(self, ctx: ErrorContext) -> None:
        self.record("error", ctx)

    # Server-side subscriptions (the connection token's ``channels`` claim) report here.

    async def on_subscribed(self, ctx: ServerSubscribedContext) -> None:
        self.record("server_subscribed", ctx)

    async def on_unsubscribed(self, ctx: ServerUnsubscribedContext) -> None:
        self.record("server_unsubscribed", ctx)

    async def on_publication(self, ctx: ServerPublicationContext) -> None:
        self.record("server_publication", ctx)


class SubEvents(Recorder, SubscriptionEventHandler):  # type: ignore[misc]
    async def on_subscribing(self, ctx: SubscribingContext) -> None:
        self.record("subscribing", ctx)

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.record("subscribed", ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.record("unsubscribed", ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.record("publication", ctx)

    async def on_error(self, ctx: SubscriptionErrorContext) -> None:
        self.record("error", ctx)


class TokenSource:
    """A ``get_token`` callback that counts its calls; ``make`` returns each token or raises."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.make = make
        self.calls = 0
        self.called = asyncio.Event()

    async def __call__(self, *channel: str) -> str:  # subscriptions pass the channel
        self.calls += 1
        self.called.set()
        return self.make()

    async def wait_calls(self, count: int, seconds: float) -> None:
        async def until() -> None:
            while self.calls < count:
                self.called.clear()
                await self.called.wait()

        await asyncio.wait_for(until(), seconds)


def new_client(server: RunningServer, **options: Any) -> tuple[Client, ClientEvents]:
    events = ClientEvents()
    client = Client(
        f"{server.ws}/connection/websocket", events=events, proxy=None, timeout=TIMEOUT, **options
    )
    return client, events


@asynccontextmanager
async def connected(
    server: RunningServer, user: str, **options: Any
) -> AsyncIterator[tuple[Client, ClientEvents]]:
    """A client connected as ``user`` (with a one-hour token unless options say otherwise)."""
    options.setdefault("token", connection_token(user))
    client, events = new_client(server, **options)
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        await events.next("connected")
        yield client, events
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def subscribed(
    client: Client, channel: str, **options: Any
) -> tuple[Subscription, SubEvents]:
    events = SubEvents()
    sub = client.new_subscription(channel, events=events, **options)
    await asyncio.wait_for(sub.subscribe(), TIMEOUT)
    await events.next("subscribed")
    return sub, events


async def no_reconnect(client: Client, events: ClientEvents) -> None:
    """Assert the client stays disconnected after a terminal code: no new attempt starts."""
    connected_before = len(events.seen["connected"])
    await asyncio.sleep(QUIET)
    assert client.state is ClientState.DISCONNECTED
    assert [ctx.code for ctx in events.seen["connecting"]] == [0]  # only "connect called"
    assert len(events.seen["connected"]) == connected_before


# --- connecting -------------------------------------------------------------------------------


async def test_connect_with_a_valid_token(server: RunningServer) -> None:
    async with connected(server, "alice") as (client, events):
        ctx: ConnectedContext = events.seen["connected"][0]
        assert client.state is ClientState.CONNECTED
        assert ctx.client
        assert ctx.client == client.client_id
        assert events.seen["error"] == []


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        pytest.param("", 3501, "bad request: connection token required", id="no-token"),
        pytest.param(
            connection_token("alice", secret="not-the-key-the-server-verifies-with"),
            3500,
            "invalid token",
            id="bad-signature",
        ),
        pytest.param("not.a.jwt", 3500, "invalid token", id="garbage"),
    ],
)
async def test_refused_connect_is_terminal(
    server: RunningServer, token: str, code: int, reason: str
) -> None:
    client, events = new_client(server, token=token)
    await asyncio.wait_for(client.connect(), TIMEOUT)
    disconnected: DisconnectedContext = await events.next("disconnected")
    assert (disconnected.code, disconnected.reason) == (code, reason)
    await no_reconnect(client, events)


async def test_expired_token_is_replaced_through_get_token(server: RunningServer) -> None:
    fresh = TokenSource(lambda: connection_token("alice"))
    expired = connection_token("alice", expires_in=-60)
    async with connected(server, "alice", token=expired, get_token=fresh) as (client, events):
        assert client.state is ClientState.CONNECTED
        assert fresh.calls == 1
        [error] = events.seen["error"]
        assert isinstance(error.error, ReplyError)
        assert (error.error.code, error.error.message) == (109, "token expired")


# --- channels -----------------------------------------------------------------------------------


async def test_publication_reaches_subscriber_with_info_until_unsubscribe(
    server: RunningServer,
) -> None:
    bob_token = connection_token("bob", info={"color": "blue"})
    async with (
        connected(server, "alice") as (alice, _),
        connected(server, "bob", token=bob_token) as (bob, _),
    ):
        room, room_events = await subscribed(alice, "chat:room1")
        _, marker_events = await subscribed(alice, "chat:marker")

        await asyncio.wait_for(bob.publish("chat:room1", {"text": "hi"}), TIMEOUT)
        got: PublicationContext = await room_events.next("publication")
        assert got.pub.data == {"text": "hi"}
        assert got.pub.info is not None
        assert (got.pub.info.user, got.pub.info.client) == ("bob", bob.client_id)
        assert (got.pub.info.conn_info, got.pub.info.chan_info) == ({"color": "blue"}, None)
        assert got.pub.offset == 0  # the namespace keeps no history

        await asyncio.wait_for(room.unsubscribe(), TIMEOUT)
        # Alice's own publish is answered after her unsubscribe was processed.
        await asyncio.wait_for(alice.publish("chat:marker", "synced"), TIMEOUT)
        assert (await marker_events.next("publication")).pub.data == "synced"
        await asyncio.wait_for(bob.publish("chat:room1", {"text": "too late"}), TIMEOUT)
        await asyncio.wait_for(bob.publish("chat:marker", "end"), TIMEOUT)
        # Bob's two publications reach alice in order: once "end" is in, "too late" was not.
        assert (await marker_events.next("publication")).pub.data == "end"
        assert [ctx.pub.data for ctx in room_events.seen["publication"]] == [{"text": "hi"}]
        assert room.state is SubscriptionState.UNSUBSCRIBED


@pytest.mark.parametrize(
    ("channel", "code", "message"),
    [
        pytest.param("locked:doc", 103, "permission denied", id="not-allowed"),
        pytest.param("nowhere:doc", 102, "unknown channel", id="unknown-namespace"),
        pytest.param("$private", 103, "permission denied", id="private-without-token"),
    ],
)
async def test_subscribe_refused_with_error_keeps_connection(
    server: RunningServer, channel: str, code: int, message: str
) -> None:
    async with connected(server, "alice") as (client, events):
        sub_events = SubEvents()
        sub = client.new_subscription(channel, events=sub_events)
        await asyncio.wait_for(sub.subscribe(), TIMEOUT)
        unsubscribed: UnsubscribedContext = await sub_events.next("unsubscribed")
        assert (unsubscribed.code, unsubscribed.reason) == (code, message)
        assert sub.state is SubscriptionState.UNSUBSCRIBED
        # A refused subscribe is an answer, not a reason to drop the connection.
        await asyncio.wait_for(client.publish("chat:after", 1), TIMEOUT)
        assert client.state is ClientState.CONNECTED
        assert events.seen["connecting"][1:] == []


async def test_rpc_without_registered_methods_is_method_not_found(server: RunningServer) -> None:
    async with connected(server, "alice") as (client, _):
        with pytest.raises(ReplyError) as caught:
            await asyncio.wait_for(client.rpc("anything", {"x": 1}), TIMEOUT)
        assert (caught.value.code, caught.value.message) == (104, "method not found")
        assert client.state is ClientState.CONNECTED


async def test_presence_and_history_through_the_sdk(server: RunningServer) -> None:
    async with connected(server, "alice") as (alice, _), connected(server, "bob") as (bob, _):
        alice_sub, _ = await subscribed(alice, "room:1")
        bob_sub, _ = await subscribed(bob, "room:1")
        presence = await asyncio.wait_for(alice_sub.presence(), TIMEOUT)
        assert sorted(info.user for info in presence.clients.values()) == ["alice", "bob"]
        stats = await asyncio.wait_for(bob_sub.presence_stats(), TIMEOUT)
        assert (stats.num_clients, stats.num_users) == (2, 2)

        for n in range(3):
            await asyncio.wait_for(alice_sub.publish({"n": n}), TIMEOUT)
        history = await asyncio.wait_for(bob_sub.history(limit=10), TIMEOUT)
        assert [p.data for p in history.publications] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert [p.offset for p in history.publications] == [1, 2, 3]
        assert (history.offset, bool(history.epoch)) == (3, True)
        newest = await asyncio.wait_for(bob_sub.history(limit=2, reverse=True), TIMEOUT)
        assert [p.offset for p in newest.publications] == [3, 2]

        # Only subscribers may ask: bob is not subscribed to room:2.
        with pytest.raises(ReplyError) as caught:
            await asyncio.wait_for(bob.presence("room:2"), TIMEOUT)
        assert caught.value.code == 103
        assert alice.state is ClientState.CONNECTED


async def test_channels_claim_subscribes_on_the_server_side(server: RunningServer) -> None:
    token = connection_token("alice", channels=["chat:inbox"])
    async with (
        connected(server, "alice", token=token) as (alice, events),
        connected(server, "bob") as (bob, _),
    ):
        subscribed: ServerSubscribedContext = await events.next("server_subscribed")
        assert subscribed.channel == "chat:inbox"
        await asyncio.wait_for(bob.publish("chat:inbox", {"note": 1}), TIMEOUT)
        got: ServerPublicationContext = await events.next("server_publication")
        assert (got.channel, got.pub.data) == ("chat:inbox", {"note": 1})
        assert got.pub.info is not None
        assert got.pub.info.user == "bob"
        assert alice.state is ClientState.CONNECTED


# --- token expiry and refresh ------------------------------------------------------------------


async def test_connection_token_is_refreshed_before_the_server_closes(
    server: RunningServer,
) -> None:
    fresh = TokenSource(lambda: connection_token("alice", expires_in=2))
    token = connection_token("alice", expires_in=2)
    first_expiry = time.time() + 2 + EXPIRED_CLOSE_DELAY
    async with connected(server, "alice", token=token, get_token=fresh) as (client, events):
        # A second refresh is only scheduled if the first reply said when to refresh again
        # (``expires`` and ``ttl``).
        await fresh.wait_calls(2, seconds=8.0)
        await asyncio.sleep(max(0.0, first_expiry + 0.2 - time.time()))  # past it for sure
        await asyncio.wait_for(client.publish("chat:alive", "still here"), TIMEOUT)
        assert client.state is ClientState.CONNECTED
        assert events.seen["connecting"][1:] == []
        assert events.seen["error"] == []


async def test_connection_expires_when_the_token_cannot_be_refreshed(
    server: RunningServer,
) -> None:
    def unavailable() -> str:
        raise RuntimeError("the auth backend is down")

    failing = TokenSource(unavailable)
    token = connection_token("alice", expires_in=1)
    async with connected(server, "alice", token=token, get_token=failing) as (client, events):
        connecting: ConnectingContext = await events.next("connecting")  # "connect called"
        connecting = await events.next("connecting", seconds=2 + EXPIRED_CLOSE_DELAY + TIMEOUT)
        assert (connecting.code, connecting.reason) == (3005, "connection expired")
        assert failing.calls >= 1  # the SDK tried to refresh in time
        assert client.state is ClientState.CONNECTING  # 3005 is not terminal


async def test_private_channel_with_a_subscription_token(server: RunningServer) -> None:
    async with connected(server, "alice") as (alice, _), connected(server, "bob") as (bob, _):
        token = subscription_token("alice", "$private")
        sub, sub_events = await subscribed(alice, "$private", token=token)
        assert sub.state is SubscriptionState.SUBSCRIBED
        await asyncio.wait_for(bob.publish("$private", {"secret": 1}), TIMEOUT)
        got: PublicationContext = await sub_events.next("publication")
        assert got.pub.data == {"secret": 1}


async def test_subscription_token_for_another_channel_disconnects(server: RunningServer) -> None:
    async with connected(server, "alice") as (client, events):
        token = subscription_token("alice", "$private")
        sub = client.new_subscription("$other", token=token)
        await asyncio.wait_for(sub.subscribe(), TIMEOUT)
        disconnected: DisconnectedContext = await events.next("disconnected")
        assert (disconnected.code, disconnected.reason) == (3500, "invalid token")
        await no_reconnect(client, events)


async def test_subscription_token_is_refreshed_with_sub_refresh(server: RunningServer) -> None:
    fresh = TokenSource(lambda: subscription_token("alice", "$feed", expires_in=2))
    async with connected(server, "alice") as (alice, events), connected(server, "bob") as (bob, _):
        sub, sub_events = await subscribed(alice, "$feed", get_token=fresh)
        first_expiry = time.time() + 2 + EXPIRED_CLOSE_DELAY
        # Subscribe, then two refreshes: the second is scheduled from the first sub_refresh
        # reply's ``expires`` and ``ttl``.
        await fresh.wait_calls(3, seconds=8.0)
        await asyncio.sleep(max(0.0, first_expiry + 0.2 - time.time()))  # past it for sure
        await asyncio.wait_for(bob.publish("$feed", "fresh"), TIMEOUT)
        assert (await sub_events.next("publication")).pub.data == "fresh"
        assert sub.state is SubscriptionState.SUBSCRIBED
        assert sub_events.seen["unsubscribed"] == []
        assert len(sub_events.seen["subscribing"]) == 1  # never resubscribed
        assert sub_events.seen["error"] == []
        assert events.seen["connecting"][1:] == []


async def test_subscription_expires_when_its_token_cannot_be_refreshed(
    server: RunningServer,
) -> None:
    """The server ends an expired subscription with an ``unsubscribe`` push (2501), which the
    SDK answers by subscribing again; the connection stays up."""
    first = subscription_token("alice", "$lease", expires_in=1)

    def once() -> str:
        nonlocal first
        if not first:
            raise RuntimeError("the auth backend is down")
        token, first = first, ""
        return token

    tokens = TokenSource(once)
    async with connected(server, "alice") as (alice, events):
        sub, sub_events = await subscribed(alice, "$lease", get_token=tokens)
        await sub_events.next("subscribing")  # "subscribe called"
        resubscribing: SubscribingContext = await sub_events.next(
            "subscribing", seconds=2 + EXPIRED_SUB_CLOSE_DELAY + TIMEOUT
        )
        assert (resubscribing.code, resubscribing.reason) == (2501, "subscription expired")
        assert sub.state is SubscriptionState.SUBSCRIBING
        assert sub_events.seen["unsubscribed"] == []
        assert alice.state is ClientState.CONNECTED
        assert events.seen["connecting"][1:] == []


# --- keepalive ----------------------------------------------------------------------------------


async def test_sdk_answers_pings_and_stays_connected(server: RunningServer) -> None:
    async with connected(server, "alice") as (client, events):
        await asyncio.sleep(2.5 * PING_INTERVAL + PONG_TIMEOUT)
        assert client.state is ClientState.CONNECTED
        assert events.seen["connecting"][1:] == []


async def test_client_that_never_pongs_is_closed_with_no_pong(server: RunningServer) -> None:
    """A raw client that connects, reads the server's ``{}`` ping and never answers it; an SDK
    client connected meanwhile is not affected."""
    async with (
        connected(server, "bystander") as (bystander, bystander_events),
        connect(f"{server.ws}/connection/websocket") as ws,
    ):
        await ws.send(json.dumps({"id": 1, "connect": {"token": connection_token("alice")}}))
        reply = json.loads(await recv(ws))
        assert reply["id"] == 1
        assert (reply["connect"]["ping"], reply["connect"]["pong"]) == (1, True)
        started = time.monotonic()
        assert await recv(ws, seconds=PING_INTERVAL + TIMEOUT) == "{}"
        code, reason = await closed_with(ws, seconds=PONG_TIMEOUT + TIMEOUT)
        assert (code, reason) == (3012, "no pong")
        assert time.monotonic() - started >= PING_INTERVAL + PONG_TIMEOUT - 0.2
        await asyncio.wait_for(bystander.publish("chat:alive", "still here"), TIMEOUT)
        assert bystander.state is ClientState.CONNECTED
        assert bystander_events.seen["connecting"][1:] == []
