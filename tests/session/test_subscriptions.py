"""Subscriptions, one connection's channels: the expiry of a subscription token, the server's
own subscribes and unsubscribes, gaps, a subscribe cut short by the connection's end, the
presence refresh, and the mapping the session reads them through.

Driven in-process through ``tests.support.session_harness``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from roomcast.engines.base import HistoryPage
from roomcast.hub import Hub
from roomcast.protocol import Disconnect, DisconnectCode
from roomcast.session.connection import SessionState
from tests.support.session_harness import FEED, Harness, early_in_a_second, sub_token

# --- subscription expiry ----------------------------------------------------------------------


async def test_an_expired_subscription_ends_with_2501_unless_refreshed(harness: Harness) -> None:
    hub = await harness.hub(client={"expired_sub_close_delay": 0.1})
    client = await harness.connected(hub)
    await early_in_a_second()
    expire_at = int(time.time()) + 1
    reply = await client.subscribe("$lapsing", token=sub_token("$lapsing", expire_at=expire_at))
    assert reply["subscribe"] == {"expires": True, "ttl": 1}
    await client.subscribe("$kept", token=sub_token("$kept", expire_at=expire_at))
    fresh = sub_token("$kept", exp=int(time.time()) + 60, info={"v": 2})
    reply = await client.call("sub_refresh", {"channel": "$kept", "token": fresh})
    assert reply["sub_refresh"]["expires"] is True
    assert 59 <= reply["sub_refresh"]["ttl"] <= 60
    assert client.session.subscriptions["$kept"].info.chan_info == b'{"v":2}'

    assert await client.push() == {
        "channel": "$lapsing",
        "unsubscribe": {"code": 2501, "reason": "subscription expired"},
    }
    await asyncio.sleep(0.1)
    assert client.nothing_more()
    assert list(client.session.subscriptions) == ["$kept"]
    assert hub.channels() == {"$kept": 1}
    assert client.session.state is SessionState.CONNECTED


# --- server-side actions and the end of a session -------------------------------------------------


async def test_server_subscribe_and_unsubscribe_push(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    await hub.subscribe_user("alice", "news")
    assert await client.push() == {"channel": "news", "subscribe": {}}
    assert hub.channels() == {"news": 1}
    await hub.unsubscribe_user("alice", "news")
    assert await client.push() == {
        "channel": "news",
        "unsubscribe": {"code": 2000, "reason": "server unsubscribe"},
    }
    assert hub.channels() == {}


async def test_server_subscribe_respects_the_channel_limit(harness: Harness) -> None:
    hub = await harness.hub(client={"channel_limit": 1})
    client = await harness.connected(hub)
    assert await client.session.server_subscribe("a") is None
    assert await client.session.server_subscribe("a") is None
    error = await client.session.server_subscribe("b")
    assert error is not None
    assert error.code == 106


# --- gaps, the end of a connection, presence ----------------------------------------------------


async def test_a_gap_in_a_positioned_stream_ends_the_subscription_with_2500(
    harness: Harness,
) -> None:
    hub = await harness.hub(channel=FEED)
    client = await harness.connected(hub)
    assert (await client.subscribe("feed:a"))["subscribe"]["positioned"] is True
    client.session.subscriptions["feed:a"].resync("feed:a")  # what the node does on a gap
    assert await client.push() == {
        "channel": "feed:a",
        "unsubscribe": {"code": 2500, "reason": "insufficient state"},
    }
    assert "feed:a" not in client.session.subscriptions
    assert hub.channels() == {}


async def test_a_connection_ending_during_a_subscribe_leaves_nothing_subscribed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await harness.hub(channel=FEED)
    client = await harness.connected(hub)
    store = hub.node.history
    assert store is not None
    read = store.read

    async def read_after_a_disconnect(channel: str, **options: Any) -> HistoryPage:
        client.session.disconnect(Disconnect.of(DisconnectCode.SHUTDOWN))
        return await read(channel, **options)

    monkeypatch.setattr(store, "read", read_after_a_disconnect)
    await client.send({"id": 2, "subscribe": {"channel": "feed:a"}})
    assert (await client.closed_with()).code == 3001
    assert client.peer.messages.empty()  # no reply for a subscribe that was undone
    assert client.session.subscriptions == {}
    assert hub.channels() == {}


async def test_presence_is_refreshed_for_as_long_as_the_connection_lives(
    harness: Harness,
) -> None:
    hub = await harness.hub(
        client={"presence_update_interval": 0.05}, channel=FEED, engine={"presence_ttl": 0.3}
    )
    client = await harness.connected(hub)
    await client.subscribe("feed:a")
    await asyncio.sleep(0.6)  # twice the TTL: only refreshes keep the entry
    assert list(await hub.presence("feed:a") or {}) == [client.session.client]
    client.session.disconnect(Disconnect.of(DisconnectCode.SHUTDOWN))
    await asyncio.sleep(0.6)  # no refresh after the end: the entry expires
    assert await hub.presence("feed:a") == {}


async def test_the_subscriptions_read_as_a_mapping(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    await client.subscribe("chat:a")
    await client.subscribe("chat:b")
    subscriptions = client.session.subscriptions
    assert (len(subscriptions), list(subscriptions)) == (2, ["chat:a", "chat:b"])
    assert "chat:a" in subscriptions
    assert subscriptions["chat:a"].channel == "chat:a"
    assert subscriptions.get("chat:c") is None
    await client.call("unsubscribe", {"channel": "chat:a"})
    assert dict(subscriptions) == {"chat:b": subscriptions["chat:b"]}
