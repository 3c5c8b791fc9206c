"""The app's lifecycle hooks, driven through in-process sessions: what each one hears, what its
answer changes, and what happens when it raises (logged once, an internal error, and the
connection goes on)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from roomcast import (
    ClientContext,
    ClientError,
    ConnectDetails,
    ConnectReply,
    Credentials,
    RefreshReply,
    SubscribeReply,
    UnsubscribeCause,
)
from roomcast.hub import Hub
from roomcast.protocol import DisconnectCode, ErrorCode, UnsubscribeCode
from tests.support.session_harness import (
    FEED,
    TIMEOUT,
    Harness,
    early_in_a_second,
    error_code,
    token,
)

Heard = list[tuple[Any, ...]]


def failures(caplog: pytest.LogCaptureFixture, hook: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hook in r.getMessage() and r.exc_info is not None]


async def until(condition: Any, seconds: float = TIMEOUT) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110  # hooks run on the session's own timeline
            await asyncio.sleep(0.01)


# --- on_connect ---------------------------------------------------------------------------------


async def test_on_connect_answers_with_data_info_and_channels(harness: Harness) -> None:
    hub = await harness.hub()
    heard: Heard = []

    @hub.on_connect
    async def connect(client: ClientContext, event: ConnectDetails) -> ConnectReply:
        heard.append((client.user, event.data, event.name, event.version))
        return ConnectReply(data={"welcome": client.user}, info={"seat": 7}, channels=("news",))

    alice = harness.client(hub)
    reply = await alice.call(
        "connect", {"token": token("alice"), "data": {"hi": 1}, "name": "js", "version": "5"}
    )
    assert heard == [("alice", {"hi": 1}, "js", "5")]
    assert reply["connect"]["data"] == {"welcome": "alice"}
    assert "news" in reply["connect"]["subs"]
    bob = await harness.connected(hub, "bob")
    await bob.subscribe("chat:room")
    await alice.subscribe("chat:room")
    await alice.call("publish", {"channel": "chat:room", "data": {"n": 2}})
    pub = (await bob.push())["pub"]
    assert pub["info"]["conn_info"] == {"seat": 7}


async def test_on_connect_returning_none_changes_nothing(harness: Harness) -> None:
    hub = await harness.hub()

    @hub.on_connect
    async def connect(client: ClientContext, event: ConnectDetails) -> None:
        return None

    client = await harness.connected(hub)
    assert client.session.user == "alice"


async def test_on_connect_refuses_with_a_client_error(harness: Harness) -> None:
    hub = await harness.hub()

    @hub.on_connect
    async def connect(client: ClientContext, event: ConnectDetails) -> None:
        raise ClientError(4403, "banned")

    client = harness.client(hub)
    reply = await client.call("connect", {"token": token("alice")})
    assert reply["error"] == {"code": 4403, "message": "banned"}
    assert hub.registry.num_clients == 0


async def test_on_connect_that_raises_is_logged_once_and_answered_100(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await harness.hub()
    calls = 0

    @hub.on_connect
    async def connect(client: ClientContext, event: ConnectDetails) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the app's bug")

    client = harness.client(hub)
    reply = await client.call("connect", {"token": token("alice")})
    assert error_code(reply) == ErrorCode.INTERNAL
    assert len(failures(caplog, "connect command failed")) == 1
    # The connection's loop goes on: the client may try again on the same connection.
    assert "connect" in await client.call("connect", {"token": token("alice")})


async def test_on_connect_answering_something_else_is_the_apps_mistake(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await harness.hub()

    @hub.on_connect
    async def connect(client: ClientContext, event: ConnectDetails) -> Any:
        return {"data": 1}

    reply = await harness.client(hub).call("connect", {"token": token("alice")})
    assert error_code(reply) == ErrorCode.INTERNAL
    assert "ConnectReply" in caplog.text


# --- on_subscribe -------------------------------------------------------------------------------


async def test_on_subscribe_still_decides_with_a_bool(harness: Harness) -> None:
    hub = await harness.hub()

    @hub.on_subscribe
    async def subscribe(client: ClientContext, channel: str) -> bool:
        return channel == "chat:yes"

    client = await harness.connected(hub)
    assert "subscribe" in await client.subscribe("chat:yes")
    assert error_code(await client.subscribe("chat:no")) == ErrorCode.PERMISSION_DENIED


async def test_on_subscribe_answers_with_data_and_channel_info(harness: Harness) -> None:
    hub = await harness.hub()

    @hub.on_subscribe
    async def subscribe(client: ClientContext, channel: str) -> SubscribeReply:
        return SubscribeReply(data={"state": [1, 2]}, info={"role": "host"})

    alice = await harness.connected(hub)
    reply = await alice.subscribe("chat:room")
    assert reply["subscribe"]["data"] == {"state": [1, 2]}
    await alice.call("publish", {"channel": "chat:room", "data": {"n": 1}})
    assert (await alice.push())["pub"]["info"]["chan_info"] == {"role": "host"}


async def test_on_subscribe_overrides_presence_and_join_leave(harness: Harness) -> None:
    hub = await harness.hub()

    @hub.on_subscribe
    async def subscribe(client: ClientContext, channel: str) -> SubscribeReply:
        return SubscribeReply(presence=True, join_leave=True, push_join_leave=True)

    alice = await harness.connected(hub)
    await alice.subscribe("chat:room")
    bob = await harness.connected(hub, "bob")
    await bob.subscribe("chat:room")
    presence = await hub.presence_store.get("chat:room")  # the namespace has no presence
    assert {info.user for info in presence.values()} == {"alice", "bob"}
    joins = [(await alice.push())["join"]["info"]["user"] for _ in range(2)]
    assert joins == ["alice", "bob"], "its own join first, then bob's"


async def test_on_subscribe_may_turn_off_what_the_namespace_forces(harness: Harness) -> None:
    hub = await harness.hub(channel=FEED)

    @hub.on_subscribe
    async def subscribe(client: ClientContext, channel: str) -> SubscribeReply:
        return SubscribeReply(presence=False, positioning=False)

    client = await harness.connected(hub)
    reply = await client.subscribe("feed:a")
    assert "positioned" not in reply["subscribe"]
    assert await hub.presence_store.get("feed:a") == {}


async def test_on_subscribe_asking_recovery_without_history_is_refused_and_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await harness.hub()

    @hub.on_subscribe
    async def subscribe(client: ClientContext, channel: str) -> SubscribeReply:
        return SubscribeReply(recovery=True)

    client = await harness.connected(hub)
    assert error_code(await client.subscribe("chat:room")) == ErrorCode.INTERNAL
    assert "keeps no history" in caplog.text
    assert "chat:room" not in client.session.subscriptions
    assert hub.node.subscriber_count("chat:room") == 0


async def test_on_subscribe_that_raises_is_logged_once_and_the_connection_goes_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await harness.hub()

    @hub.on_subscribe
    async def subscribe(client: ClientContext, channel: str) -> bool:
        if channel == "chat:boom":
            raise RuntimeError("the app's bug")
        return True

    client = await harness.connected(hub)
    assert error_code(await client.subscribe("chat:boom")) == ErrorCode.INTERNAL
    assert len(failures(caplog, "subscribe command failed")) == 1
    assert "subscribe" in await client.subscribe("chat:fine")


# --- on_unsubscribe and on_disconnect -------------------------------------------------------------


async def test_on_unsubscribe_hears_every_end_with_its_code(harness: Harness) -> None:
    hub = await harness.hub()
    heard: Heard = []

    @hub.on_unsubscribe
    async def unsubscribe(client: ClientContext, channel: str, code: int, reason: str) -> None:
        heard.append(("unsubscribe", client.user, channel, code, reason))

    @hub.on_disconnect
    async def disconnect(client: ClientContext, code: int, reason: str) -> None:
        heard.append(("disconnect", client.user, code, reason))

    client = await harness.connected(hub)
    for channel in ("chat:a", "chat:b", "chat:c"):
        await client.subscribe(channel)
    await client.call("unsubscribe", {"channel": "chat:a"})
    await hub.unsubscribe_user("alice", "chat:b")
    await client.session.closed(DisconnectCode.SLOW, "slow")
    assert heard == [
        ("unsubscribe", "alice", "chat:a", UnsubscribeCause.CLIENT, "client unsubscribed"),
        ("unsubscribe", "alice", "chat:b", UnsubscribeCode.SERVER, "server unsubscribe"),
        ("unsubscribe", "alice", "chat:c", UnsubscribeCause.DISCONNECT, "client disconnected"),
        ("disconnect", "alice", DisconnectCode.SLOW, "slow"),
    ]


async def test_on_disconnect_fires_once_and_only_for_connected_clients(harness: Harness) -> None:
    hub = await harness.hub()
    heard: list[str] = []

    @hub.on_disconnect
    async def disconnect(client: ClientContext, code: int, reason: str) -> None:
        heard.append(client.client)

    connected = await harness.connected(hub)
    never = harness.client(hub)
    await connected.session.closed()
    await connected.session.closed()
    await never.session.closed()
    assert heard == [connected.session.client]


async def test_hooks_that_only_hear_and_raise_are_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await harness.hub()

    @hub.on_unsubscribe
    async def unsubscribe(client: ClientContext, channel: str, code: int, reason: str) -> None:
        raise RuntimeError("unsubscribe bug")

    @hub.on_disconnect
    async def disconnect(client: ClientContext, code: int, reason: str) -> None:
        raise RuntimeError("disconnect bug")

    client = await harness.connected(hub)
    await client.subscribe("chat:a")
    assert await client.call("unsubscribe", {"channel": "chat:a"}) == {"id": 3, "unsubscribe": {}}
    await client.subscribe("chat:b")
    await client.session.closed()
    assert len(failures(caplog, "on_unsubscribe failed")) == 2
    assert len(failures(caplog, "on_disconnect failed")) == 1
    assert hub.node.subscriber_count("chat:b") == 0


# --- on_refresh ---------------------------------------------------------------------------------


async def app_connected(harness: Harness, hub: Hub, expire_in: int, user: str = "alice") -> Any:
    await early_in_a_second()
    client = harness.client(hub, Credentials(user=user, expire_at=int(time.time()) + expire_in))
    return client, await client.connect()


async def test_on_refresh_keeps_an_app_authenticated_connection_alive(harness: Harness) -> None:
    hub = await harness.hub(client={"expired_close_delay": 0.1})
    asked: list[float] = []

    @hub.on_refresh
    async def refresh(client: ClientContext) -> RefreshReply:
        asked.append(time.time())
        return RefreshReply(expire_at=int(time.time()) + 1, info={"round": len(asked)})

    client, connected = await app_connected(harness, hub, expire_in=1)
    assert "expires" not in connected, "the client is told it does not expire: no token needed"
    assert "ttl" not in connected
    await until(lambda: len(asked) >= 2, seconds=5.0)
    assert not client.peer.closed.is_set()
    assert client.session.conn_info in (b'{"round":1}', b'{"round":2}')


async def test_on_refresh_answering_expired_ends_with_3005(harness: Harness) -> None:
    hub = await harness.hub()

    @hub.on_refresh
    async def refresh(client: ClientContext) -> RefreshReply:
        return RefreshReply(expired=True)

    client, _ = await app_connected(harness, hub, expire_in=1)
    close = await client.closed_with(within=4.0)
    assert close.code == DisconnectCode.EXPIRED


async def test_on_refresh_that_raises_is_logged_once_and_ends_with_3004(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await harness.hub()

    @hub.on_refresh
    async def refresh(client: ClientContext) -> RefreshReply:
        raise RuntimeError("the app's bug")

    client, _ = await app_connected(harness, hub, expire_in=1)
    close = await client.closed_with(within=4.0)
    assert close.code == DisconnectCode.SERVER_ERROR
    assert len(failures(caplog, "on_refresh failed")) == 1


async def test_token_connections_still_refresh_with_tokens(harness: Harness) -> None:
    hub = await harness.hub()

    @hub.on_refresh
    async def refresh(client: ClientContext) -> RefreshReply:
        raise AssertionError("a token connection is never refreshed by the app")

    client = harness.client(hub)
    connected = await client.connect(token("alice", exp=int(time.time()) + 60))
    assert connected["expires"] is True
    assert connected["ttl"] > 0


async def test_app_credentials_without_on_refresh_expire_as_before(harness: Harness) -> None:
    hub = await harness.hub()
    _, connected = await app_connected(harness, hub, expire_in=60)
    assert connected["expires"] is True
