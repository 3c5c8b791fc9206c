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
from tests.support.session_harness import FEED, Harness, early_in_a_second, sub_token, token

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


async def test_a_gap_in_a_server_side_subscription_ends_the_connection_with_3010(
    harness: Harness,
) -> None:
    # The SDKs never subscribe again by themselves to a channel the server subscribed them
    # to, so an unsubscribe 2500 would lose the subscription: the connection ends instead,
    # and the SDK reconnects with the channel's position in connect's ``subs``.
    hub = await harness.hub(channel=FEED)
    client = await harness.connected(hub, channels=["feed:a"])
    subscription = client.session.subscriptions["feed:a"]
    assert subscription.server_side
    assert subscription.features.positioned
    subscription.resync("feed:a")
    closed = await client.closed_with()
    assert (closed.code, closed.reason) == (3010, "insufficient state")


async def test_a_gap_in_an_api_subscription_ends_the_connection_with_3010(
    harness: Harness,
) -> None:
    hub = await harness.hub(channel=FEED)
    client = await harness.connected(hub)
    await hub.subscribe_user("alice", "feed:b")
    assert (await client.push())["subscribe"]["positioned"] is True
    client.session.subscriptions["feed:b"].resync("feed:b")
    assert (await client.closed_with()).code == 3010


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


async def test_only_a_connection_in_presence_wakes_up_to_refresh_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = {"name": "quiet", "allow_subscribe_for_client": True}
    channels = {"namespaces": [*FEED["namespaces"], quiet]}
    hub = await harness.hub(client={"presence_update_interval": 0.05}, channel=channels)
    store = hub.presence_store
    assert store is not None
    added: list[str] = []
    add = store.add

    async def counted(channel: str, *args: Any, **kwargs: Any) -> None:
        added.append(channel)
        await add(channel, *args, **kwargs)

    monkeypatch.setattr(store, "add", counted)
    client = await harness.connected(hub)
    await client.subscribe("quiet:a")
    await asyncio.sleep(0.3)  # six intervals: nothing of this connection is in presence
    assert added == []
    assert client.session.subscriptions._presence_timer is None
    await client.subscribe("feed:a")
    await asyncio.sleep(0.3)  # now it is, and its entry is refreshed
    assert added[0] == "feed:a"
    assert len(added) >= 3, added
    await client.call("unsubscribe", {"channel": "feed:a"})
    await asyncio.sleep(0.1)
    refreshed = len(added)
    await asyncio.sleep(0.3)  # out of presence again: no more wake-ups
    assert len(added) == refreshed
    assert client.session.subscriptions._presence_timer is None


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


# --- cache recovery mode -----------------------------------------------------------------------

CACHE: dict[str, Any] = {
    "namespaces": [
        {
            "name": name,
            "allow_subscribe_for_client": True,
            "allow_tags_filter": True,
            "history_size": 10,
            "history_ttl": "60s",
            "force_recovery": True,
            "force_recovery_mode": "cache",
            "auto_cache_recover": auto,
        }
        for name, auto in (("state", False), ("auto", True))
    ]
}


async def test_cache_mode_recovers_only_the_latest_publication(harness: Harness) -> None:
    hub = await harness.hub(channel=CACHE)
    client = await harness.connected(hub)
    first = (await client.subscribe("state:s"))["subscribe"]
    assert first["recoverable"] is True
    await client.call("unsubscribe", {"channel": "state:s"})
    for n in range(3):
        await hub.publish("state:s", {"n": n})
    since = {"recover": True, "offset": 0, "epoch": first["epoch"]}
    reply = (await client.subscribe("state:s", **since))["subscribe"]
    assert reply["recovered"] is True
    assert [p["data"] for p in reply["publications"]] == [{"n": 2}]
    assert reply["offset"] == 3

    # A client already at the top gets nothing again, and is told it recovered.
    await client.call("unsubscribe", {"channel": "state:s"})
    at_top = {"recover": True, "offset": 3, "epoch": first["epoch"]}
    reply = (await client.subscribe("state:s", **at_top))["subscribe"]
    assert reply["recovered"] is True
    assert reply.get("publications", []) == []


async def test_cache_mode_gives_the_latest_publication_the_filter_matches(
    harness: Harness,
) -> None:
    hub = await harness.hub(channel=CACHE)
    for n, k in enumerate(["a", "a", "b"]):
        await hub.publish("state:f", {"n": n}, tags={"k": k})
    client = await harness.connected(hub)
    tf = {"key": "k", "cmp": "eq", "val": "a"}
    reply = (await client.subscribe("state:f", tf=tf, recover=True, offset=0))["subscribe"]
    assert [p["data"] for p in reply["publications"]] == [{"n": 1}]


async def test_auto_cache_recover_gives_every_subscriber_the_latest(harness: Harness) -> None:
    hub = await harness.hub(channel=CACHE)
    await hub.publish("auto:x", {"n": 0})
    await hub.publish("auto:x", {"n": 1})
    client = await harness.connected(hub, channels=["auto:server"])
    await hub.publish("auto:server", {"n": 7})
    # Subscribing without asking to recover still brings the latest publication.
    reply = (await client.subscribe("auto:x"))["subscribe"]
    assert (reply["was_recovering"], reply["recovered"]) == (True, True)
    assert [p["data"] for p in reply["publications"]] == [{"n": 1}]
    # And so does a server-side subscription, on the next connect.
    again = harness.client(hub)
    subs = (await again.connect(token("alice", channels=["auto:server"])))["subs"]
    assert [p["data"] for p in subs["auto:server"]["publications"]] == [{"n": 7}]


async def test_a_server_api_subscribe_in_auto_cache_mode_pushes_the_latest(
    harness: Harness,
) -> None:
    hub = await harness.hub(channel=CACHE)
    await hub.publish("auto:pushed", {"n": 0})
    await hub.publish("auto:pushed", {"n": 1})
    client = await harness.connected(hub)
    await hub.subscribe_user("alice", "auto:pushed")
    subscribe = await client.push()
    assert subscribe["subscribe"]["offset"] == 2
    pub = await client.push()
    assert (pub["channel"], pub["pub"]["data"], pub["pub"]["offset"]) == (
        "auto:pushed",
        {"n": 1},
        2,
    )
    await hub.publish("auto:pushed", {"n": 2})
    assert (await client.push())["pub"]["data"] == {"n": 2}


async def test_without_cache_mode_a_subscribe_brings_no_publication(harness: Harness) -> None:
    stream = {
        "namespaces": [
            {
                "name": "st",
                "allow_subscribe_for_client": True,
                "history_size": 10,
                "history_ttl": "60s",
                "force_recovery": True,
            }
        ]
    }
    hub = await harness.hub(channel=stream)
    await hub.publish("st:x", {"n": 0})
    client = await harness.connected(hub)
    assert "publications" not in (await client.subscribe("st:x"))["subscribe"]


# --- server-side subscriptions recover from the connect's subs ---------------------------------

RECOVERING: dict[str, Any] = {
    "namespaces": [
        {
            "name": "news",
            "history_size": 100,
            "history_ttl": "60s",
            "force_recovery": True,
        }
    ]
}


async def test_server_side_subscriptions_resume_from_the_connect_subs(harness: Harness) -> None:
    hub = await harness.hub(channel=RECOVERING)
    channels = ["news:a", "news:b"]
    first = harness.client(hub)
    subs = (await first.connect(token("alice", channels=channels)))["subs"]
    assert subs["news:a"]["recoverable"] is True
    epoch = subs["news:a"]["epoch"]
    await hub.publish("news:a", {"n": 0})
    assert (await first.push())["pub"]["offset"] == 1
    await first.session.closed()

    for n in range(1, 4):
        await hub.publish("news:a", {"n": n})
    again = harness.client(hub)
    resume = {
        "news:a": {"recover": True, "offset": 1, "epoch": epoch},
        "news:gone": {"recover": True, "offset": 5, "epoch": "x"},
    }
    reply = await again.call(
        "connect", {"token": token("alice", channels=channels), "subs": resume}
    )
    subs = reply["connect"]["subs"]
    assert (subs["news:a"]["was_recovering"], subs["news:a"]["recovered"]) == (True, True)
    assert [p["data"]["n"] for p in subs["news:a"]["publications"]] == [1, 2, 3]
    assert subs["news:a"]["offset"] == 4
    # news:b had no entry: subscribed afresh; news:gone is no longer the client's: absent.
    assert "was_recovering" not in subs["news:b"]
    assert set(subs) == {"news:a", "news:b"}
    await hub.publish("news:a", {"n": 4})
    assert (await again.push())["pub"]["data"] == {"n": 4}


async def test_a_server_side_subscription_too_far_behind_is_not_recovered(
    harness: Harness,
) -> None:
    hub = await harness.hub(channel=RECOVERING)
    client = harness.client(hub)
    resume = {"news:a": {"recover": True, "offset": 3, "epoch": "an-old-epoch"}}
    reply = await client.call(
        "connect", {"token": token("alice", channels=["news:a"]), "subs": resume}
    )
    sub = reply["connect"]["subs"]["news:a"]
    assert sub["was_recovering"] is True
    assert sub.get("recovered", False) is False
