"""Commands, the handlers of a connected client's commands: subscribe (the namespace's rules,
hooks and subscription tokens), unsubscribe, sub_refresh, publish, rpc, send, presence and
history, each answered with its reply or error while the connection stays, or a disconnect.

Driven in-process through ``tests.support.session_harness``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest
from pydantic import BaseModel

from roomcast import ClientContext, ClientError
from roomcast.engines.base import HistoryPage
from roomcast.hub import Hub
from roomcast.session.connection import SessionState
from tests.support.session_harness import FEED, SECRET, Harness, error_code, sub_token

# --- subscribe --------------------------------------------------------------------------------


REGEX_CHANNELS: dict[str, Any] = {
    "namespaces": [
        {
            "name": "orders",
            "channel_regex": r"^[0-9]+$",
            "allow_subscribe_for_client": True,
            "allow_publish_for_client": True,
            "presence": True,
            "allow_presence_for_client": True,
            "history_size": 10,
            "history_ttl": "60s",
            "allow_history_for_client": True,
        }
    ]
}


@pytest.mark.parametrize(
    ("method", "request_fields"),
    [
        ("subscribe", {}),
        ("publish", {"data": {"v": 1}}),
        ("presence", {}),
        ("presence_stats", {}),
        ("history", {}),
    ],
)
async def test_a_name_the_channel_regex_refuses_is_error_107(
    harness: Harness, method: str, request_fields: dict[str, Any]
) -> None:
    hub = await harness.hub(channel=REGEX_CHANNELS)
    client = await harness.connected(hub)
    reply = await client.call(method, {"channel": "orders:abc", **request_fields})
    assert error_code(reply) == 107
    assert "channel_regex" in reply["error"]["message"]
    ok = await client.call(method, {"channel": "orders:42", **request_fields})
    assert "error" not in ok, ok
    assert client.session.state is SessionState.CONNECTED


async def test_subscribe_to_an_allowed_channel(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    assert await client.subscribe("chat:lobby") == {"id": 2, "subscribe": {}}
    assert hub.channels() == {"chat:lobby": 1}


@pytest.mark.parametrize(
    ("channel", "code"),
    [("nowhere:room", 102), ("closed:room", 103), ("x" * 256, 102)],
)
async def test_subscribe_refusals(harness: Harness, hub: Hub, channel: str, code: int) -> None:
    client = await harness.connected(hub)
    assert error_code(await client.subscribe(channel)) == code
    assert client.session.state is SessionState.CONNECTED
    assert hub.channels() == {}


async def test_subscribing_twice_is_error_105(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    await client.subscribe("chat:lobby")
    assert error_code(await client.subscribe("chat:lobby")) == 105


async def test_channel_limit_is_error_106(harness: Harness) -> None:
    hub = await harness.hub(client={"channel_limit": 2})
    client = await harness.connected(hub)
    await client.subscribe("chat:a")
    await client.subscribe("chat:b")
    assert error_code(await client.subscribe("chat:c")) == 106


async def test_anonymous_needs_allow_subscribe_for_anonymous(harness: Harness) -> None:
    hub = await harness.hub(client={"allow_anonymous_connect_without_token": True})
    client = harness.client(hub)
    await client.connect()
    assert error_code(await client.subscribe("chat:lobby")) == 103
    assert "subscribe" in await client.subscribe("public:lobby")


@pytest.mark.parametrize("channel", ["dialog#alice,bob", "dialog:x#alice,bob"])
async def test_user_limited_channel_admits_only_the_users_it_names(
    harness: Harness, hub: Hub, channel: str
) -> None:
    alice = await harness.connected(hub, "alice")
    carol = await harness.connected(hub, "carol")
    assert "subscribe" in await alice.subscribe(channel)
    assert error_code(await carol.subscribe(channel)) == 103


async def test_private_channel_needs_a_subscription_token(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    assert error_code(await client.subscribe("$secret")) == 103
    reply = await client.subscribe("$secret", token=sub_token("$secret", info={"role": "x"}))
    assert reply == {"id": 3, "subscribe": {}}
    assert client.session.subscriptions["$secret"].info.chan_info == b'{"role":"x"}'


async def test_a_subscription_token_grants_a_closed_namespace(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    assert "subscribe" in await client.subscribe("closed:x", token=sub_token("closed:x"))


@pytest.mark.parametrize(
    "claims",
    [{"channel": "$other"}, {"channel": "$secret", "sub": "mallory"}, {"client": "someone"}],
)
async def test_a_subscription_token_for_another_channel_user_or_client_closes_3500(
    harness: Harness, hub: Hub, claims: dict[str, Any]
) -> None:
    client = await harness.connected(hub)
    all_claims = {"sub": "alice", "channel": "$secret", **claims}
    signed = jwt.encode(all_claims, SECRET, algorithm="HS256")
    await client.send({"id": 5, "subscribe": {"channel": "$secret", "token": signed}})
    assert (await client.closed_with()).code == 3500
    assert hub.channels() == {}


async def test_a_subscription_token_bound_to_this_client_is_accepted(
    harness: Harness, hub: Hub
) -> None:
    client = await harness.connected(hub)
    signed = sub_token("$secret", client=client.session.client)
    assert "subscribe" in await client.subscribe("$secret", token=signed)


async def test_an_expired_subscription_token_is_error_109(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    expired = sub_token("$secret", exp=int(time.time()) - 5)
    assert error_code(await client.subscribe("$secret", token=expired)) == 109


async def test_a_badly_signed_subscription_token_is_error_103(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    forged = jwt.encode({"sub": "alice", "channel": "$s"}, "x" * 64, algorithm="HS256")
    assert error_code(await client.subscribe("$s", token=forged)) == 103


async def test_a_subscription_token_with_a_past_expire_at_is_error_110(
    harness: Harness, hub: Hub
) -> None:
    client = await harness.connected(hub)
    signed = sub_token("$secret", expire_at=int(time.time()) - 5)
    assert error_code(await client.subscribe("$secret", token=signed)) == 110


async def test_sub_refresh_of_an_unknown_subscription_is_error_103(
    harness: Harness, hub: Hub
) -> None:
    client = await harness.connected(hub)
    request = {"channel": "$secret", "token": sub_token("$secret")}
    assert error_code(await client.call("sub_refresh", request)) == 103


async def test_sub_refresh_for_another_channel_closes_3500(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    await client.subscribe("$secret", token=sub_token("$secret"))
    await client.send({"id": 9, "sub_refresh": {"channel": "$secret", "token": sub_token("$x")}})
    assert (await client.closed_with()).code == 3500


async def test_unsubscribe_leaves_the_channel(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    await client.subscribe("chat:lobby")
    assert await client.call("unsubscribe", {"channel": "chat:lobby"}) == {
        "id": 3,
        "unsubscribe": {},
    }
    assert hub.channels() == {}
    assert "unsubscribe" in await client.call("unsubscribe", {"channel": "chat:never"})


async def test_the_subscribe_reply_comes_before_what_arrived_while_subscribing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await harness.hub(channel=FEED)
    client = await harness.connected(hub)
    store = hub.node.history
    assert store is not None
    read = store.read

    async def read_then_publish(channel: str, **options: Any) -> HistoryPage:
        page = await read(channel, **options)
        await hub.publish(channel, {"n": 1})  # reaches the subscription while it is pending
        return page

    monkeypatch.setattr(store, "read", read_then_publish)
    await client.send({"id": 2, "subscribe": {"channel": "feed:a"}})
    reply = await client.next()
    assert reply["id"] == 2
    assert reply["subscribe"]["positioned"] is True
    assert "offset" not in reply["subscribe"]  # the position before the publication
    push = (await client.next())["push"]
    assert (push["channel"], push["pub"]["data"], push["pub"]["offset"]) == ("feed:a", {"n": 1}, 1)


# --- publish ------------------------------------------------------------------------------------


async def test_publish_for_subscriber_needs_a_subscription(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    publish = {"channel": "chat:lobby", "data": {"text": "hi"}}
    assert error_code(await client.call("publish", publish)) == 103
    await client.subscribe("chat:lobby")
    assert await client.call("publish", publish) == {"id": 4, "publish": {}}


async def test_a_publication_carries_the_publisher_info(harness: Harness, hub: Hub) -> None:
    listener = await harness.connected(hub, "bob")
    await listener.subscribe("chat:lobby")
    speaker = await harness.connected(hub, "alice", info={"name": "Alice"})
    await speaker.subscribe("chat:lobby")
    await speaker.call("publish", {"channel": "chat:lobby", "data": {"text": "hi"}})
    push = await listener.push()
    assert push == {
        "channel": "chat:lobby",
        "pub": {
            "data": {"text": "hi"},
            "info": {
                "user": "alice",
                "client": speaker.session.client,
                "conn_info": {"name": "Alice"},
            },
        },
    }
    assert (await speaker.push())["pub"]["data"] == {"text": "hi"}


async def test_anonymous_publish_needs_allow_publish_for_anonymous(harness: Harness) -> None:
    channels = {
        "namespaces": [
            {"name": "open", "allow_publish_for_client": True},
            {"name": "wide", "allow_publish_for_client": True, "allow_publish_for_anonymous": True},
        ]
    }
    hub = await harness.hub(
        client={"allow_anonymous_connect_without_token": True}, channel=channels
    )
    client = harness.client(hub)
    await client.connect()
    assert error_code(await client.call("publish", {"channel": "open:x", "data": 1})) == 103
    assert "publish" in await client.call("publish", {"channel": "wide:x", "data": 1})


async def test_publish_to_an_unknown_namespace_is_error_102(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    assert error_code(await client.call("publish", {"channel": "nope:x", "data": 1})) == 102


class Message(BaseModel):
    text: str


async def test_a_publication_model_rejects_invalid_data_with_107(
    harness: Harness, hub: Hub
) -> None:
    hub.publication_model("chat", Message)
    client = await harness.connected(hub)
    await client.subscribe("chat:lobby")
    reply = await client.call("publish", {"channel": "chat:lobby", "data": {"text": 5}})
    assert error_code(reply) == 107
    assert "text" in reply["error"]["message"]
    ok = await client.call("publish", {"channel": "chat:lobby", "data": {"text": "hi"}})
    assert "publish" in ok


# --- hooks --------------------------------------------------------------------------------------


async def test_the_subscribe_hook_decides_instead_of_config(harness: Harness, hub: Hub) -> None:
    seen: list[tuple[str, str]] = []

    @hub.on_subscribe
    async def only_vip(client: ClientContext, channel: str) -> bool:
        seen.append((client.user, channel))
        return channel.endswith("vip")

    client = await harness.connected(hub)
    assert "subscribe" in await client.subscribe("closed:vip")
    assert error_code(await client.subscribe("chat:lobby")) == 103
    assert seen == [("alice", "closed:vip"), ("alice", "chat:lobby")]


async def test_the_publish_hook_decides_instead_of_config(harness: Harness, hub: Hub) -> None:
    @hub.on_publish
    async def no_shouting(client: ClientContext, channel: str, data: Any) -> bool:
        return not str(data.get("text", "")).isupper()

    client = await harness.connected(hub)
    assert "publish" in await client.call(
        "publish", {"channel": "closed:x", "data": {"text": "hi"}}
    )
    reply = await client.call("publish", {"channel": "closed:x", "data": {"text": "HI"}})
    assert error_code(reply) == 103


async def test_a_hook_raising_client_error_replies_its_code(harness: Harness, hub: Hub) -> None:
    @hub.on_subscribe
    async def refuse(client: ClientContext, channel: str) -> bool:
        raise ClientError(4000, "nope")

    @hub.on_publish
    async def refuse_publish(client: ClientContext, channel: str, data: Any) -> bool:
        raise ClientError(4001, "not now", temporary=True)

    client = await harness.connected(hub)
    assert (await client.subscribe("chat:lobby"))["error"] == {"code": 4000, "message": "nope"}
    reply = await client.call("publish", {"channel": "chat:lobby", "data": 1})
    assert reply["error"] == {"code": 4001, "message": "not now", "temporary": True}
    assert client.session.state is SessionState.CONNECTED


async def test_rpc_replies_the_handler_result(harness: Harness, hub: Hub) -> None:
    @hub.rpc("add")
    async def add(client: ClientContext, data: Any) -> Any:
        return {"sum": data["a"] + data["b"], "user": client.user}

    @hub.rpc("refuse")
    async def refuse(client: ClientContext, data: Any) -> Any:
        raise ClientError(4000, "nope")

    client = await harness.connected(hub)
    reply = await client.call("rpc", {"method": "add", "data": {"a": 1, "b": 2}})
    assert reply["rpc"] == {"data": {"sum": 3, "user": "alice"}}
    reply = await client.call("rpc", {"method": "refuse"})
    assert reply["error"] == {"code": 4000, "message": "nope"}


async def test_rpc_of_an_unknown_method_is_error_104(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    assert error_code(await client.call("rpc", {"method": "nothing"})) == 104


async def test_send_reaches_the_message_handler_without_reply(harness: Harness, hub: Hub) -> None:
    received: list[Any] = []

    @hub.on_message
    async def on_message(client: ClientContext, data: Any) -> None:
        received.append((client.user, data))

    client = await harness.connected(hub)
    await client.send({"send": {"data": {"hello": 1}}})
    assert received == [("alice", {"hello": 1})]
    await asyncio.sleep(0.02)
    assert client.nothing_more()


# --- presence and history -----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["presence", "presence_stats", "history"])
async def test_presence_and_history_are_not_available_when_allowed(
    harness: Harness, hub: Hub, method: str
) -> None:
    client = await harness.connected(hub)
    assert error_code(await client.call(method, {"channel": "chat:lobby"})) == 103
    await client.subscribe("chat:lobby")
    assert error_code(await client.call(method, {"channel": "chat:lobby"})) == 108
    assert error_code(await client.call(method, {"channel": "nope:x"})) == 102
