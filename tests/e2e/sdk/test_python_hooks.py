"""The lifecycle hooks (``Hub.on_connect``, ``on_subscribe``, ``on_unsubscribe``,
``on_disconnect``, ``on_refresh``) as the official Python SDK (``centrifuge-python``) meets
them, against ``tests/support/hooks_app.py`` under uvicorn with roomcast's protocol. What the
SDK reports is checked beside what the hooks heard (their JSON-lines log). Every wait is
bounded."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from centrifuge import (  # type: ignore[import-untyped]  # no py.typed in 0.7
    Client,
    ClientState,
    SubscribedContext,
    Subscription,
    SubscriptionEventHandler,
    UnsubscribedContext,
)

from roomcast import UnsubscribeCause
from roomcast.protocol import DisconnectCode
from roomcast.transport.close_codes import CloseCode
from tests.support.hook_log import HookLog, start_hooks_app
from tests.support.python_sdk import TIMEOUT, ClientEvents
from tests.support.server import RunningServer
from tests.support.tcp_proxy import proxy_to

EXPIRE_IN = 2
"""Seconds a connection of the refreshing app lives between two refreshes."""


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, HookLog]]:
    server, log = start_hooks_app(tmp_path_factory.mktemp("hooks"))
    yield server, log
    server.stop()
    assert "Traceback" not in server.log, server.log


class SubEvents(SubscriptionEventHandler):  # type: ignore[misc]
    def __init__(self) -> None:
        self.subscribed: asyncio.Queue[SubscribedContext] = asyncio.Queue()
        self.unsubscribed: asyncio.Queue[UnsubscribedContext] = asyncio.Queue()

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.put_nowait(ctx)

    async def on_unsubscribed(self, ctx: UnsubscribedContext) -> None:
        self.unsubscribed.put_nowait(ctx)


@asynccontextmanager
async def client_of(url: str, user: str) -> AsyncIterator[tuple[Client, ClientEvents]]:
    """A client of ``url`` (a client endpoint) as ``user``, connected; disconnected after."""
    events = ClientEvents()
    client = Client(f"{url}?user={user}", events=events, timeout=TIMEOUT, proxy=None)
    try:
        await asyncio.wait_for(client.connect(), TIMEOUT)
        await events.until(lambda: bool(events.connected), "connected", TIMEOUT)
        yield client, events
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


def endpoint(server: RunningServer) -> str:
    return f"{server.ws}/connection/websocket"


async def subscribed(client: Client, channel: str) -> tuple[Subscription, SubEvents]:
    events = SubEvents()
    sub = client.new_subscription(channel, events=events)
    await asyncio.wait_for(sub.subscribe(), TIMEOUT)
    await asyncio.wait_for(events.subscribed.get(), TIMEOUT)
    return sub, events


def the_one(log: HookLog, hook: str, **fields: Any) -> dict[str, Any]:
    found = log.events(hook, **fields)
    assert len(found) == 1, f"{hook} {fields}: {found}"
    return found[0]


async def test_on_connect_answers_the_sdk_with_data(hooks: tuple[RunningServer, HookLog]) -> None:
    server, log = hooks
    async with client_of(endpoint(server), "ada") as (client, events):
        assert events.connected[0].data == {"welcome": "ada"}
        heard = the_one(log, "connect", user="ada")
        assert heard["client"] == client.client_id


async def test_on_subscribe_decides_presence_and_on_connect_the_info(
    hooks: tuple[RunningServer, HookLog],
) -> None:
    server, log = hooks
    async with client_of(endpoint(server), "bea") as (client, _):
        shown, _ = await subscribed(client, "lobby-py")
        hidden, _ = await subscribed(client, "hidden-py")
        presence = await asyncio.wait_for(shown.presence(), TIMEOUT)
        infos = list(presence.clients.values())
        assert [(i.user, i.conn_info) for i in infos] == [("bea", {"name": "Bea"})]
        assert (await asyncio.wait_for(hidden.presence(), TIMEOUT)).clients == {}
        assert [e["channel"] for e in log.events("subscribe", user="bea")] == [
            "lobby-py",
            "hidden-py",
        ]


async def test_subscribed_context_carries_the_hooks_data(
    hooks: tuple[RunningServer, HookLog],
) -> None:
    server, _ = hooks
    async with client_of(endpoint(server), "cy") as (client, _):
        events = SubEvents()
        sub = client.new_subscription("greetings", events=events)
        await asyncio.wait_for(sub.subscribe(), TIMEOUT)
        ctx = await asyncio.wait_for(events.subscribed.get(), TIMEOUT)
        assert ctx.data == {"hello": "greetings"}


async def test_on_subscribe_refusing_is_permission_denied(
    hooks: tuple[RunningServer, HookLog],
) -> None:
    server, _ = hooks
    async with client_of(endpoint(server), "dee") as (client, _):
        events = SubEvents()
        sub = client.new_subscription("deny-py", events=events)
        await asyncio.wait_for(sub.subscribe(), TIMEOUT)
        ctx = await asyncio.wait_for(events.unsubscribed.get(), TIMEOUT)
        assert ctx.code == 103


async def test_on_unsubscribe_and_on_disconnect_hear_a_clean_end(
    hooks: tuple[RunningServer, HookLog],
) -> None:
    server, log = hooks
    async with client_of(endpoint(server), "eve") as (client, _):
        sub, _ = await subscribed(client, "left-py")
        await subscribed(client, "kept-py")
        await asyncio.wait_for(sub.unsubscribe(), TIMEOUT)
        await log.until(lambda: bool(log.events("unsubscribe", user="eve")), "unsubscribe")
        assert the_one(log, "unsubscribe", user="eve")["code"] == UnsubscribeCause.CLIENT
    await log.until(lambda: bool(log.events("disconnect", user="eve")), "on_disconnect")
    heard = [(e["hook"], e.get("channel"), e.get("code")) for e in log.events(user="eve")]
    assert heard[-3:] == [
        ("unsubscribe", "left-py", UnsubscribeCause.CLIENT),
        ("unsubscribe", "kept-py", UnsubscribeCause.DISCONNECT),
        ("disconnect", None, heard[-1][2]),
    ]
    # centrifuge-python closes its WebSocket with a normal closure.
    assert heard[-1][2] == 1000


async def test_on_disconnect_fires_once_when_the_tcp_connection_is_killed(
    hooks: tuple[RunningServer, HookLog],
) -> None:
    server, log = hooks
    async with proxy_to(server.port) as proxy:
        url = proxy.url("ws", "/connection/websocket")
        events = ClientEvents()
        client = Client(f"{url}?user=fay", events=events, timeout=TIMEOUT, proxy=None)
        try:
            await asyncio.wait_for(client.connect(), TIMEOUT)
            await events.until(lambda: bool(events.connected), "connected", TIMEOUT)
            proxy.refusing = True  # the SDK's reconnects fail from now on
            proxy.abort_connections()  # no close frame: as if the network died
            await log.until(lambda: bool(log.events("disconnect", user="fay")), "on_disconnect")
        finally:
            await asyncio.wait_for(client.disconnect(), TIMEOUT)
    await asyncio.sleep(0.5)  # a second call would come now, if there were one
    assert the_one(log, "disconnect", user="fay")["code"] == CloseCode.ABNORMAL_CLOSURE


async def test_on_disconnect_fires_once_at_server_shutdown(tmp_path: Path) -> None:
    server, log = start_hooks_app(tmp_path)
    try:
        async with client_of(endpoint(server), "gus") as (client, events):
            await subscribed(client, "shut-py")
            server.process.send_signal(signal.SIGINT)
            # 1001 is not terminal: the SDK goes on trying to reconnect.
            await events.until(lambda: len(events.connecting) > 1, "reconnecting", TIMEOUT)
            assert events.connecting[1].code == 1
            await asyncio.to_thread(server.process.wait, TIMEOUT)
    finally:
        server.stop()
    assert the_one(log, "disconnect", user="gus")["code"] == 1001
    assert the_one(log, "unsubscribe", user="gus")["code"] == UnsubscribeCause.DISCONNECT
    assert "Traceback" not in server.log, server.log


async def test_on_refresh_keeps_the_connection_without_a_token(tmp_path: Path) -> None:
    server, log = start_hooks_app(tmp_path, expire_in=EXPIRE_IN)
    try:
        async with client_of(endpoint(server), "hal") as (client, events):
            await log.until(
                lambda: len(log.events("refresh", user="hal")) >= 2,
                "two refreshes",
                seconds=4 * EXPIRE_IN + 5,
            )
            assert client.state is ClientState.CONNECTED
            assert events.disconnected == []
            assert len(events.connected) == 1, "never reconnected"
        async with client_of(endpoint(server), "last") as (client, events):
            first = client.client_id
            # on_refresh answers expired: 3005, after which the SDK connects again.
            await events.until(lambda: len(events.connecting) > 1, "reconnecting", 3 * EXPIRE_IN)
            assert events.connecting[1].code == DisconnectCode.EXPIRED
    finally:
        server.stop()
    assert the_one(log, "disconnect", client=first)["code"] == DisconnectCode.EXPIRED
