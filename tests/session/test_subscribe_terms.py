"""What a subscribe asks for beyond its channel, each option honoured or refused by name: the
tags filter (live, kept aside, in the reply's history, after a recovery), the flag bits,
``delta``, ``data``, the map and shared-poll fields, and a connect's ``subs`` entries.

Driven in-process through ``tests.support.session_harness``; every publication here has
tags, and a test that filters checks both that matching ones arrive and that the others
never do.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from centrifuge.fossil import apply_delta  # type: ignore[import-untyped]  # the SDK's decoder

from roomcast.hub import Hub
from roomcast.protocol import FilterNode, SubscribeFlag, SubscribeRequest
from roomcast.session.connection import SessionState
from roomcast.session.subscribe_terms import (
    NO_TERMS,
    SubscribeTerms,
    check_resume,
    check_subscribe,
)
from roomcast.session.subscription import FilteredSubscription
from roomcast.settings import ChannelOptions
from tests.support.session_harness import Client, Harness, error_code

TAGGED: dict[str, Any] = {
    "namespaces": [
        {
            "name": "ticks",
            "allow_subscribe_for_client": True,
            "allow_tags_filter": True,
            "history_size": 100,
            "history_ttl": "60s",
            "allow_recovery": True,
            "allow_positioning": True,
        },
        {"name": "plain", "allow_subscribe_for_client": True},
    ]
}
IS_A = {"key": "k", "cmp": "eq", "val": "a"}


@pytest.fixture
async def hub(harness: Harness) -> Hub:
    return await harness.hub(channel=TAGGED)


async def publish(hub: Hub, channel: str, *tags: str) -> None:
    """One publication per value, ``{"n": i, "k": value}`` tagged ``k=value`` ("" for none)."""
    for n, value in enumerate(tags):
        await hub.publish(channel, {"n": n, "k": value}, tags={"k": value} if value else None)


async def pubs(client: Client, count: int) -> list[dict[str, Any]]:
    """The next ``count`` publication pushes' data."""
    return [(await client.push())["pub"]["data"] for _ in range(count)]


async def nothing_within(client: Client, seconds: float = 0.1) -> None:
    await asyncio.sleep(seconds)
    assert client.stash == [], client.stash
    assert client.nothing_more()


# --- the tags filter ---------------------------------------------------------------------------


async def test_live_publications_are_filtered_by_their_tags(harness: Harness, hub: Hub) -> None:
    filtered = await harness.connected(hub, "alice")
    everything = await harness.connected(hub, "bob")
    assert "subscribe" in await filtered.subscribe("ticks:x", tf=IS_A)
    assert "subscribe" in await everything.subscribe("ticks:x")
    assert isinstance(filtered.session.subscriptions["ticks:x"], FilteredSubscription)
    assert not isinstance(everything.session.subscriptions["ticks:x"], FilteredSubscription)

    await publish(hub, "ticks:x", "a", "b", "", "a")
    assert await pubs(filtered, 2) == [{"n": 0, "k": "a"}, {"n": 3, "k": "a"}]
    assert [d["n"] for d in await pubs(everything, 4)] == [0, 1, 2, 3]
    await nothing_within(filtered)


async def test_join_and_leave_are_not_filtered(harness: Harness) -> None:
    channels = {
        "namespaces": [
            {
                "name": "room",
                "allow_subscribe_for_client": True,
                "allow_tags_filter": True,
                "join_leave": True,
                "force_push_join_leave": True,
            }
        ]
    }
    hub = await harness.hub(channel=channels)
    watcher = await harness.connected(hub, "alice")
    await watcher.subscribe("room:1", tf=IS_A)
    assert (await watcher.push())["join"]["info"]["user"] == "alice"  # its own
    visitor = await harness.connected(hub, "bob")
    await visitor.subscribe("room:1")
    assert (await watcher.push())["join"]["info"]["user"] == "bob"
    await visitor.call("unsubscribe", {"channel": "room:1"})
    assert (await watcher.push())["leave"]["info"]["user"] == "bob"


async def test_the_reply_history_and_the_recovery_are_filtered(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    first = (await client.subscribe("ticks:r", tf=IS_A, recoverable=True))["subscribe"]
    await client.call("unsubscribe", {"channel": "ticks:r"})
    epoch = first["epoch"]
    await publish(hub, "ticks:r", "a", "b")
    reply = await client.subscribe("ticks:r", tf=IS_A, recover=True, offset=0, epoch=epoch)
    result = reply["subscribe"]
    assert result["recovered"] is True
    assert [p["data"] for p in result["publications"]] == [{"n": 0, "k": "a"}]
    assert result["offset"] == 2  # the stream's position, past the filtered one

    await client.call("unsubscribe", {"channel": "ticks:r"})
    await publish(hub, "ticks:r", "b", "a", "a", "c")
    again = await client.subscribe("ticks:r", tf=IS_A, recover=True, offset=2, epoch=epoch)
    recovered = again["subscribe"]
    assert recovered["recovered"] is True
    assert [(p["offset"], p["data"]["k"]) for p in recovered["publications"]] == [
        (4, "a"),
        (5, "a"),
    ]
    assert recovered["offset"] == 6
    await nothing_within(client)


async def test_publications_kept_aside_during_a_subscribe_are_filtered(
    harness: Harness, hub: Hub
) -> None:
    """A publication arriving while a positioned subscribe reads history is kept aside, then
    released after the reply: filtered like every other."""
    client = await harness.connected(hub)
    store = hub.node.history
    assert store is not None
    original = store.read
    reading = asyncio.Event()
    release = asyncio.Event()

    async def slow_read(*args: Any, **kwargs: Any) -> Any:
        page = await original(*args, **kwargs)
        reading.set()
        await release.wait()
        return page

    store.read = slow_read  # type: ignore[method-assign]
    subscribe = asyncio.create_task(client.subscribe("ticks:k", tf=IS_A, positioned=True))
    await asyncio.wait_for(reading.wait(), 2)
    await publish(hub, "ticks:k", "b", "a", "c")
    release.set()
    reply = await asyncio.wait_for(subscribe, 2)
    store.read = original  # type: ignore[method-assign]
    assert reply["subscribe"]["positioned"] is True
    assert await pubs(client, 1) == [{"n": 1, "k": "a"}]
    await nothing_within(client)


@pytest.mark.parametrize(
    ("channel", "tf", "message"),
    [
        ("plain:x", IS_A, "tags filter not allowed in this namespace"),
        ("ticks:x", {"key": "k", "cmp": "near", "val": "a"}, "invalid tags filter: tf: unknown"),
        ("ticks:x", {"op": "not", "nodes": []}, "invalid tags filter: tf: 'not' takes exactly"),
    ],
)
async def test_a_filter_is_refused_with_107_saying_why(
    harness: Harness, hub: Hub, channel: str, tf: dict[str, Any], message: str
) -> None:
    client = await harness.connected(hub)
    reply = await client.subscribe(channel, tf=tf)
    assert error_code(reply) == 107
    assert reply["error"]["message"].startswith(message), reply
    assert client.session.state is SessionState.CONNECTED
    assert hub.channels() == {}


# --- flags, delta, data, unserved fields ------------------------------------------------------


async def test_reject_unrecovered_turns_a_failed_recovery_into_error_112(
    harness: Harness, hub: Hub
) -> None:
    await publish(hub, "ticks:u", "a")
    client = await harness.connected(hub)
    flag = SubscribeFlag.CHANNEL_COMPACTION | SubscribeFlag.REJECT_UNRECOVERED
    stale = {"recover": True, "offset": 1, "epoch": "another-epoch", "recoverable": True}
    assert error_code(await client.subscribe("ticks:u", flag=int(flag), **stale)) == 112
    assert hub.channels() == {}
    # Without the flag the same recovery is answered with recovered: false.
    reply = await client.subscribe("ticks:u", flag=int(SubscribeFlag.CHANNEL_COMPACTION), **stale)
    assert reply["subscribe"].get("recovered", False) is False
    assert reply["subscribe"]["was_recovering"] is True
    assert "id" not in reply["subscribe"]  # channel compaction is declined


async def test_reject_unrecovered_lets_a_good_recovery_through(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    first = (await client.subscribe("ticks:g", recoverable=True))["subscribe"]
    await client.call("unsubscribe", {"channel": "ticks:g"})
    await publish(hub, "ticks:g", "a")
    flag = int(SubscribeFlag.REJECT_UNRECOVERED)
    reply = await client.subscribe(
        "ticks:g", recover=True, offset=first.get("offset", 0), epoch=first["epoch"], flag=flag
    )
    assert reply["subscribe"]["recovered"] is True
    assert [p["data"]["n"] for p in reply["subscribe"]["publications"]] == [0]


async def test_fossil_delta_is_declined_and_publications_come_whole(
    harness: Harness, hub: Hub
) -> None:
    client = await harness.connected(hub)
    reply = await client.subscribe("plain:d", delta="fossil")
    assert reply == {"id": 2, "subscribe": {}}  # no "delta": true, so the SDK expects none
    await publish(hub, "plain:d", "a")
    pub = (await client.push())["pub"]
    assert pub["data"] == {"n": 0, "k": "a"}
    assert "delta" not in pub


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"delta": "zstd"}, "unknown delta type 'zstd'"),
        ({"data": {"why": 1}}, "subscribe data is not supported"),
        ({"flag": 4}, "unknown subscribe flag bits 0x4"),
        ({"type": 1}, "subscribe: map and shared-poll subscriptions are not served: type"),
        (
            {"type": 2, "phase": 2, "cursor": "c", "limit": 5, "asc": True},
            "subscribe: map and shared-poll subscriptions are not served: "
            "type, phase, cursor, limit, asc not supported",
        ),
    ],
)
async def test_subscribe_options_roomcast_does_not_serve_are_error_107(
    harness: Harness, hub: Hub, request_fields: dict[str, Any], message: str
) -> None:
    client = await harness.connected(hub)
    reply = await client.subscribe("plain:x", **request_fields)
    assert error_code(reply) == 107
    assert reply["error"]["message"].startswith(message), reply
    assert hub.channels() == {}
    assert client.session.state is SessionState.CONNECTED


async def test_map_publish_and_shared_poll_tracking_are_error_107(harness: Harness) -> None:
    channels = {
        "namespaces": [
            {"name": "open", "allow_subscribe_for_client": True, "allow_publish_for_client": True}
        ]
    }
    hub = await harness.hub(channel=channels)
    client = await harness.connected(hub)
    await client.subscribe("open:m")
    reply = await client.call(
        "publish", {"channel": "open:m", "data": {"v": 1}, "type": 1, "key": "k1"}
    )
    assert error_code(reply) == 107
    assert reply["error"]["message"] == (
        "publish: map and shared-poll subscriptions are not served: type, key not supported"
    )
    reply = await client.call("sub_refresh", {"channel": "open:m", "type": 2, "untrack": ["k"]})
    assert error_code(reply) == 107
    assert "sub_refresh: map and shared-poll" in reply["error"]["message"]
    await client.call("publish", {"channel": "open:m", "data": {"v": 2}})
    assert (await client.push())["pub"]["data"] == {"v": 2}  # only the plain one went out


# --- connect subs entries ------------------------------------------------------------------------


async def test_a_connect_subs_entry_asking_for_more_than_a_position_is_error_107(
    harness: Harness, hub: Hub
) -> None:
    client = harness.client(hub)
    entry = {"recover": True, "offset": 1, "epoch": "e", "tf": IS_A, "join_leave": True}
    reply = await client.call("connect", {"subs": {"ticks:s": entry}})
    assert error_code(reply) == 107
    assert (
        reply["error"]["message"] == "connect subs['ticks:s']: join_leave, tf not supported there"
    )
    assert client.session.state is SessionState.CONNECTING


# --- the pure checks ---------------------------------------------------------------------------


def test_check_subscribe_gives_terms_only_when_something_changes() -> None:
    allowing = ChannelOptions(allow_tags_filter=True)
    assert check_subscribe(SubscribeRequest(channel="c", flag=1), allowing) is NO_TERMS
    terms = check_subscribe(SubscribeRequest(channel="c", flag=3), allowing)
    assert terms == SubscribeTerms(reject_unrecovered=True)
    filtered = check_subscribe(
        SubscribeRequest(channel="c", tf=FilterNode(key="k", cmp="ex")), allowing
    )
    assert isinstance(filtered, SubscribeTerms)
    assert filtered.tags_filter is not None
    assert filtered.tags_filter.matches({"k": ""}) is True
    assert filtered.tags_filter.matches({}) is False


def test_check_resume_accepts_what_the_sdks_send() -> None:
    assert check_resume("c", SubscribeRequest(recover=True, offset=4, epoch="e")) is None
    assert check_resume("c", SubscribeRequest(delta="fossil")) is None
    refused = check_resume("c", SubscribeRequest(recover=True, token="t"))
    assert refused is not None
    assert refused.message == "connect subs['c']: token not supported there"


# --- fossil deltas ------------------------------------------------------------------------------

DELTAS: dict[str, Any] = {
    "namespaces": [
        {
            "name": "docs",
            "allow_subscribe_for_client": True,
            "allow_tags_filter": True,
            "allowed_delta_types": ["fossil"],
            "delta_publish": True,
        },
        {"name": "allowed", "allow_subscribe_for_client": True, "allowed_delta_types": ["fossil"]},
    ]
}


async def test_fossil_delta_is_served_where_the_namespace_publishes_deltas(
    harness: Harness,
) -> None:
    """The reply says ``delta``; the first publication goes whole, the next as a fossil delta
    against it, both as JSON strings (the SDKs' form), which the SDK's decoder turns back
    into the published JSON; a subscriber that did not ask gets plain JSON."""
    hub = await harness.hub(channel=DELTAS)
    client, plain = await harness.connected(hub), await harness.connected(hub)
    reply = await client.subscribe("docs:1", delta="fossil")
    assert reply == {"id": 2, "subscribe": {"delta": True}}
    assert await plain.subscribe("docs:1") == {"id": 2, "subscribe": {}}
    first, second = {"text": "x" * 200, "n": 1}, {"text": "x" * 200, "n": 2}
    await hub.publish("docs:1", first)
    await hub.publish("docs:1", second)
    whole, delta = (await client.push())["pub"], (await client.push())["pub"]
    assert "delta" not in whole
    assert json.loads(whole["data"]) == first
    assert delta["delta"] is True
    base = whole["data"].encode()
    rebuilt = bytes(apply_delta(base, delta["data"].encode()))
    assert json.loads(rebuilt) == second
    assert len(delta["data"]) < len(json.dumps(second)) // 4
    assert [(await plain.push())["pub"]["data"] for _ in range(2)] == [first, second]


async def test_fossil_delta_is_declined_without_delta_publish(harness: Harness) -> None:
    hub = await harness.hub(channel=DELTAS)
    client = await harness.connected(hub)
    assert await client.subscribe("allowed:1", delta="fossil") == {"id": 2, "subscribe": {}}
    await hub.publish("allowed:1", {"n": 1})
    assert (await client.push())["pub"] == {"data": {"n": 1}}


async def test_fossil_delta_with_a_tags_filter_is_refused(harness: Harness) -> None:
    hub = await harness.hub(channel=DELTAS)
    client = await harness.connected(hub)
    reply = await client.subscribe("docs:2", delta="fossil", tf=IS_A)
    assert error_code(reply) == 107
    assert "delta and a tags filter" in reply["error"]["message"]


def test_delta_terms_follow_the_namespace() -> None:
    publishing = ChannelOptions(allowed_delta_types=["fossil"], delta_publish=True)
    served = check_subscribe(SubscribeRequest(channel="c", delta="fossil"), publishing)
    assert served == SubscribeTerms(delta=True)
    declined = check_subscribe(
        SubscribeRequest(channel="c", delta="fossil"),
        ChannelOptions(allowed_delta_types=["fossil"]),
    )
    assert declined is NO_TERMS
    assert check_subscribe(SubscribeRequest(channel="c"), publishing) is NO_TERMS
