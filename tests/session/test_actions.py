"""What the server's actions do to a connection (``roomcast.session.actions``), through
``Hub.subscribe_user`` / ``refresh_user`` / ``disconnect_user`` / ``unsubscribe_user`` on an
in-process hub: every option of a server-side subscribe and of a refresh, each with a test
that fails if it is ignored, the refusal of those no node could honour, and the targets.

Cross-node delivery of the same actions: ``tests/e2e/test_cluster.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from roomcast.hub import Hub
from roomcast.protocol import Disconnect, DisconnectCode
from roomcast.publication import StreamPosition
from tests.support.session_harness import Client, Harness, token

NAMESPACES: dict[str, Any] = {
    "namespaces": [
        {  # history, presence, join/leave; nothing forced
            "name": "room",
            "history_size": 10,
            "history_ttl": "60s",
            "presence": True,
            "join_leave": True,
            "allow_recovery": True,
            "allow_subscribe_for_client": True,
            "allow_presence_for_subscriber": True,
        },
        {"name": "bare"},  # no history
    ]
}


@pytest.fixture
async def room_hub(harness: Harness) -> Hub:
    return await harness.hub(client={"expired_sub_close_delay": 0.2}, channel=NAMESPACES)


async def connected(harness: Harness, hub: Hub, user: str = "alice") -> Client:
    client = harness.client(hub)
    await client.connect(token(user))
    return client


async def test_data_travels_in_the_push_and_info_is_the_subscribers_channel_info(
    harness: Harness, room_hub: Hub
) -> None:
    client = await connected(harness, room_hub)
    await room_hub.subscribe_user(
        "alice", "room:a", chan_info=b'{"role":"guest"}', data=b'{"welcome":1}'
    )
    push = await client.push()
    assert push["subscribe"]["data"] == {"welcome": 1}
    presence = await room_hub.presence("room:a")
    assert presence is not None
    [entry] = presence.values()
    assert entry.chan_info == b'{"role":"guest"}'


async def test_override_presence_false_keeps_the_subscriber_out_of_presence(
    harness: Harness, room_hub: Hub
) -> None:
    client = await connected(harness, room_hub)
    await room_hub.subscribe_user("alice", "room:a", override={"presence": False})
    await client.push()
    await asyncio.sleep(0.05)
    assert await room_hub.presence("room:a") == {}


async def test_override_join_leave_false_announces_nothing(harness: Harness, room_hub: Hub) -> None:
    watcher = await connected(harness, room_hub, "watcher")
    assert "error" not in await watcher.subscribe("room:a", join_leave=True)
    assert (await watcher.push())["join"]["info"]["user"] == "watcher"  # its own
    with_joins = await connected(harness, room_hub, "bob")
    await room_hub.subscribe_user("bob", "room:a")  # the namespace's join_leave: announced
    await with_joins.push()
    assert (await watcher.push())["join"]["info"]["user"] == "bob"
    joiner = await connected(harness, room_hub)
    await room_hub.subscribe_user("alice", "room:a", override={"join_leave": False})
    await joiner.push()
    await room_hub.publish("room:a", {"after": "the subscribe"})
    assert (await watcher.push())["pub"]["data"] == {"after": "the subscribe"}  # no join first


async def test_override_force_push_join_leave_pushes_others_joins(
    harness: Harness, room_hub: Hub
) -> None:
    listener = await connected(harness, room_hub)
    await room_hub.subscribe_user("alice", "room:a", override={"force_push_join_leave": True})
    await listener.push()
    own = await listener.push()
    assert own["join"]["info"]["user"] == "alice"  # its own join comes first
    other = await connected(harness, room_hub, "bob")
    await other.subscribe("room:a")
    join = await listener.push()
    assert join["join"]["info"]["user"] == "bob"


async def test_override_force_positioning_and_force_recovery(
    harness: Harness, room_hub: Hub
) -> None:
    client = await connected(harness, room_hub)
    await room_hub.subscribe_user("alice", "room:a")
    plain = (await client.push())["subscribe"]
    assert plain == {}  # the namespace forces nothing
    await room_hub.subscribe_user("alice", "room:b", override={"force_positioning": True})
    positioned = (await client.push())["subscribe"]
    assert positioned["positioned"] is True
    assert "recoverable" not in positioned
    await room_hub.subscribe_user("alice", "room:c", override={"force_recovery": True})
    recoverable = (await client.push())["subscribe"]
    assert (recoverable["recoverable"], recoverable["positioned"]) == (True, True)


async def test_recover_since_replays_what_followed_the_position(
    harness: Harness, room_hub: Hub
) -> None:
    first = await room_hub.publish("room:a", {"n": 1})
    for n in (2, 3):
        await room_hub.publish("room:a", {"n": n})
    client = await connected(harness, room_hub)
    since = StreamPosition(first.offset, first.epoch)
    await room_hub.subscribe_user("alice", "room:a", recover_since=since)
    push = (await client.push())["subscribe"]
    assert (push["offset"], push["epoch"], push["recoverable"]) == (1, first.epoch, True)
    replayed = [await client.push() for _ in range(2)]
    assert [(p["pub"]["offset"], p["pub"]["data"]) for p in replayed] == [
        (2, {"n": 2}),
        (3, {"n": 3}),
    ]
    await room_hub.publish("room:a", {"n": 4})
    assert (await client.push())["pub"]["offset"] == 4  # then live, no gap, no repeat


async def test_recover_since_another_epoch_starts_at_the_current_position(
    harness: Harness, room_hub: Hub
) -> None:
    top = await room_hub.publish("room:a", {"n": 1})
    client = await connected(harness, room_hub)
    await room_hub.subscribe_user("alice", "room:a", recover_since=StreamPosition(1, "gone"))
    push = (await client.push())["subscribe"]
    assert (push["offset"], push["epoch"]) == (top.offset, top.epoch)  # not what was asked
    await room_hub.publish("room:a", {"n": 2})
    assert (await client.push())["pub"]["data"] == {"n": 2}  # nothing replayed before it


async def test_expire_at_closes_the_connection_with_3006_unless_a_later_subscribe_moved_it(
    harness: Harness, room_hub: Hub
) -> None:
    client = await connected(harness, room_hub)
    await room_hub.subscribe_user("alice", "room:a", expire_at=int(time.time()) + 1)
    await client.push()
    await room_hub.subscribe_user("alice", "room:a", expire_at=int(time.time()) + 3)  # moved
    await asyncio.sleep(2.3)
    assert client.nothing_more()
    close = await client.closed_with(within=3.0)
    assert close.code == DisconnectCode.SUB_EXPIRED


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"override": {"delta": True}}, "override: unknown option(s) delta"),
        ({"override": {"force_recovery": True}}, "override.force_recovery needs history"),
        ({"override": {"force_positioning": True}}, "override.force_positioning needs history"),
        ({"recover_since": StreamPosition(1, "e")}, "recover_since needs a recoverable"),
        ({"expire_at": 1000}, "expire_at 1000 is already past"),
        ({"chan_info": b"{not json"}, "info must be JSON"),
        ({"data": b"nope"}, "data must be JSON"),
    ],
)
async def test_options_no_node_could_honour_are_refused_naming_them(
    room_hub: Hub, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match="^" + named.replace("(", r"\(").replace(")", r"\)")):
        await room_hub.subscribe_user("alice", "bare:x", **options)


async def test_refresh_expired_closes_with_3005(harness: Harness, room_hub: Hub) -> None:
    client = await connected(harness, room_hub)
    await room_hub.refresh_user("alice", expired=True)
    assert (await client.closed_with()).code == DisconnectCode.EXPIRED


async def test_refresh_expire_at_sets_the_connections_expiry_and_pushes_it(
    harness: Harness,
) -> None:
    hub = await harness.hub(client={"expired_close_delay": 0.2}, channel=NAMESPACES)
    client = await connected(harness, hub)
    await hub.refresh_user("alice", expire_at=int(time.time()) + 2)
    refresh = (await client.push())["refresh"]
    assert refresh["expires"] is True
    assert 1 <= refresh["ttl"] <= 2
    assert (await client.closed_with(within=4.0)).code == DisconnectCode.EXPIRED


async def test_refresh_info_becomes_the_connections_info(harness: Harness, room_hub: Hub) -> None:
    client = await connected(harness, room_hub)
    await client.subscribe("room:a")
    await room_hub.refresh_user("alice", conn_info=b'{"v":2}')
    await client.push()
    await asyncio.sleep(0.05)
    presence = await room_hub.presence("room:a")
    assert presence is not None
    assert [entry.conn_info for entry in presence.values()] == [b'{"v":2}']
    assert client.session.context.info == b'{"v":2}'  # what its publications will carry


async def test_targets_user_client_and_all_users(harness: Harness, room_hub: Hub) -> None:
    alice_1 = await connected(harness, room_hub)
    alice_2 = await connected(harness, room_hub)
    bob = await connected(harness, room_hub, "bob")
    await room_hub.disconnect_user("alice", Disconnect(4001, "one"), client=alice_1.session.client)
    assert (await alice_1.closed_with()).code == 4001
    await room_hub.disconnect_user("bob", client=alice_2.session.client)  # not bob's: nothing
    await asyncio.sleep(0.05)
    assert alice_2.nothing_more()
    await room_hub.disconnect_user("", Disconnect(4002, "all"), all_users=True)
    assert (await alice_2.closed_with()).code == 4002
    assert (await bob.closed_with()).code == 4002
