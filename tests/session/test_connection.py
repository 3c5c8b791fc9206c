"""Session, the connection's state machine: connect, refresh, pings, staleness, expiry, the
dispatcher's handling of protocol violations and failing handlers, and the end of a session.

Driven in-process through ``tests.support.session_harness``; the commands a connected client sends
are tested in ``test_commands.py``, what keeps a subscription going in ``test_subscriptions.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomcast import ClientContext
from roomcast.hub import Hub
from roomcast.protocol import DisconnectCode
from roomcast.session.connection import Session, SessionState
from roomcast.writer import Close, Frame, Writer
from tests.support.session_harness import (
    TIMEOUT,
    Harness,
    early_in_a_second,
    error_code,
    public_pem,
    sub_token,
    token,
)

# --- connect ------------------------------------------------------------------------------------


async def test_connect_with_hs256_token(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    result = await client.connect(token("alice"))
    assert result["client"] == client.session.client
    assert result["ping"] == 25
    assert result["pong"] is True
    assert "expires" not in result
    assert client.session.state is SessionState.CONNECTED
    assert client.session.user == "alice"
    assert hub.registry.of_user("alice") == [client.session]


async def test_connect_with_exp_announces_expiry(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    result = await client.connect(token("alice", exp=int(time.time()) + 600))
    assert result["expires"] is True
    assert 598 <= result["ttl"] <= 600


@pytest.mark.parametrize(
    ("setting", "algorithm"), [("rsa_public_key", "RS256"), ("ecdsa_public_key", "ES256")]
)
async def test_connect_with_asymmetric_tokens(
    harness: Harness, setting: str, algorithm: str
) -> None:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    hub = await harness.hub(client={"token": {setting: public_pem(key)}})
    client = harness.client(hub)
    await client.connect(jwt.encode({"sub": "bob"}, key, algorithm=algorithm))
    assert client.session.user == "bob"


async def test_expired_token_is_an_error_reply_and_the_client_may_retry(
    harness: Harness, hub: Hub
) -> None:
    client = harness.client(hub)
    reply = await client.call("connect", {"token": token(exp=int(time.time()) - 5)})
    assert error_code(reply) == 109
    assert client.session.state is SessionState.CONNECTING
    result = await client.connect(token())
    assert result["client"] == client.session.client


async def test_a_past_expire_at_claim_is_an_expired_error(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    reply = await client.call("connect", {"token": token(expire_at=int(time.time()) - 5)})
    assert error_code(reply) == 110
    assert client.session.state is SessionState.CONNECTING


async def test_invalid_token_closes_3500(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    forged = jwt.encode({"sub": "alice"}, "x" * 64, algorithm="HS256")
    await client.send({"id": 1, "connect": {"token": forged}})
    assert (await client.closed_with()).code == 3500
    assert client.session.state is SessionState.CLOSED
    assert hub.registry.num_clients == 0


async def test_no_token_closes_3501_when_tokens_are_required(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    await client.send({"id": 1, "connect": {}})
    close = await client.closed_with()
    assert close == Close(3501, "bad request: connection token required")


async def test_insecure_connects_anonymously(harness: Harness) -> None:
    hub = await harness.hub(client={"insecure": True})
    client = harness.client(hub)
    await client.connect()
    assert client.session.state is SessionState.CONNECTED
    assert client.session.user == ""
    assert hub.registry.of_user("") == [client.session]


async def test_anonymous_connect_without_token_when_allowed(harness: Harness) -> None:
    hub = await harness.hub(client={"allow_anonymous_connect_without_token": True})
    anonymous = harness.client(hub)
    await anonymous.connect()
    assert anonymous.session.user == ""
    identified = harness.client(hub)
    await identified.connect(token("alice"))
    assert identified.session.user == "alice"


async def test_connect_subscribes_the_token_channels(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    result = await client.connect(token("alice", channels=["news", "chat:x"]))
    assert set(result["subs"]) == {"news", "chat:x"}
    assert hub.channels() == {"news": 1, "chat:x": 1}


async def test_a_repeated_token_channel_subscribes_once(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub, channels=["news", "news"])
    await hub.publish("news", {"n": 1})
    assert (await client.push())["pub"]["data"] == {"n": 1}
    await asyncio.sleep(0.02)
    assert client.peer.messages.empty()
    await client.session.closed()
    assert hub.channels() == {}


async def test_what_the_client_says_about_itself_reaches_the_hooks(
    harness: Harness, hub: Hub
) -> None:
    seen: list[ClientContext] = []

    @hub.rpc("hello")
    async def hello(client: ClientContext, data: Any) -> str:
        seen.append(client)
        return "hi"

    client = harness.client(hub)
    reply = await client.call(
        "connect",
        {
            "token": token("alice"),
            "name": "my-app",
            "version": "1.2.3",
            "data": {"locale": "fr"},
            "headers": {"Authorization": "Bearer x", "X-Tenant": "acme"},
            "profile": "dashboard",
            "flag": 1,
            "dict": "abc",
        },
    )
    result = reply["connect"]
    assert "flag" not in result
    assert "dict" not in result
    assert (await client.call("rpc", {"method": "hello"}))["rpc"]["data"] == "hi"
    (context,) = seen
    assert context.connect.headers == {"authorization": "Bearer x", "x-tenant": "acme"}
    assert (context.connect.name, context.connect.version) == ("my-app", "1.2.3")
    assert (context.connect.data, context.connect.profile) == ({"locale": "fr"}, "dashboard")


async def test_a_connect_that_says_nothing_has_empty_details(harness: Harness, hub: Hub) -> None:
    seen: list[ClientContext] = []

    @hub.rpc("hello")
    async def hello(client: ClientContext, data: Any) -> None:
        seen.append(client)

    client = await harness.connected(hub)
    await client.call("rpc", {"method": "hello"})
    assert seen[0].connect.headers == {}
    assert seen[0].connect.data is None


async def test_a_ping_command_is_error_108_and_the_connection_stays(
    harness: Harness, hub: Hub
) -> None:
    client = await harness.connected(hub)
    reply = await client.call("ping")
    assert error_code(reply) == 108
    assert "ping command not available" in reply["error"]["message"]
    assert client.session.state is SessionState.CONNECTED


async def test_a_command_with_a_field_the_protocol_lacks_is_error_107(
    harness: Harness, hub: Hub
) -> None:
    client = await harness.connected(hub)
    reply = await client.call("subscribe", {"channel": "chat:x", "colour": "red"})
    assert error_code(reply) == 107
    assert reply["error"]["message"] == (
        "subscribe: unknown field subscribe.colour (not in client.proto)"
    )
    assert hub.channels() == {}
    assert "subscribe" in await client.subscribe("chat:x")  # still connected, still served


async def test_before_connect_a_refused_command_other_than_connect_closes_3501(
    harness: Harness, hub: Hub
) -> None:
    client = harness.client(hub)
    await client.send({"id": 1, "presence": {"channel": "chat:x", "mood": 1}})
    assert await client.closed_with() == Close(3501, "bad request: first command must be connect")


async def test_a_refused_connect_can_be_retried(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    reply = await client.call("connect", {"token": token("alice"), "tokn": "x"})
    assert error_code(reply) == 107
    assert client.session.state is SessionState.CONNECTING
    assert (await client.connect(token("alice")))["client"] == client.session.client


# --- protocol violations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commands", "reason"),
    [
        ([{"id": 1, "subscribe": {"channel": "news"}}], "first command must be connect"),
        ([{"id": 1, "connect": {}}, {"id": 2, "connect": {}}], "already connected"),
        ([{"id": 1, "connect": {}}, {"id": 2, "frobnicate": {}}], "unknown method"),
        ([{"id": 1, "connect": {}}, {}], "pong without ping"),
        ([{}], "pong without ping"),
    ],
)
async def test_protocol_violations_close_3501(
    harness: Harness, commands: list[dict[str, Any]], reason: str
) -> None:
    hub = await harness.hub(client={"insecure": True})
    client = harness.client(hub)
    for command in commands:
        await client.send(command)
    assert await client.closed_with() == Close(3501, f"bad request: {reason}")


async def test_a_malformed_frame_closes_3501(harness: Harness, hub: Hub) -> None:
    client = harness.client(hub)
    await client.session.handle(b"{not json")
    assert (await client.closed_with()).code == 3501


async def test_commands_after_a_fatal_one_in_the_same_frame_are_ignored(
    harness: Harness,
) -> None:
    hub = await harness.hub(client={"insecure": True})
    client = harness.client(hub)
    await client.send({"id": 1, "publish": {"channel": "x", "data": 1}}, {"id": 2, "connect": {}})
    assert (await client.closed_with()).code == 3501
    assert client.peer.messages.empty()
    assert hub.registry.num_clients == 0


# --- ping, stale, expiry ----------------------------------------------------------------------


async def test_unanswered_ping_closes_3012(harness: Harness) -> None:
    hub = await harness.hub(client={"ping_interval": 0.05, "pong_timeout": 0.05})
    client = await harness.connected(hub)
    assert await client.next() == {}
    assert (await client.closed_with()).code == 3012


async def test_answered_pings_keep_the_connection(harness: Harness) -> None:
    hub = await harness.hub(client={"ping_interval": 0.05, "pong_timeout": 0.05})
    client = await harness.connected(hub)
    for _ in range(4):
        assert await client.next() == {}
        await client.send({})
        assert client.session.state is SessionState.CONNECTED
    assert not client.peer.closed.is_set()


async def test_the_connect_reply_announces_the_pings_the_server_sends(harness: Harness) -> None:
    hub = await harness.hub(client={"ping_interval": 0.5})
    client = harness.client(hub)
    result = await client.connect(token())
    assert result.get("ping", 0) >= 1
    assert result.get("pong") is True


async def test_answered_pings_keep_the_connection_without_a_pong_timeout(
    harness: Harness,
) -> None:
    hub = await harness.hub(client={"ping_interval": 0.05, "pong_timeout": 0})
    client = await harness.connected(hub)
    for _ in range(4):
        assert await client.next() == {}
        await client.send({})
        assert client.session.state is SessionState.CONNECTED


async def test_no_connect_in_time_closes_stale(harness: Harness) -> None:
    hub = await harness.hub(client={"stale_close_delay": 0.05})
    client = harness.client(hub)
    assert await client.closed_with() == Close(3502, "stale: no connect command in time")


async def test_connect_in_time_is_not_stale(harness: Harness) -> None:
    hub = await harness.hub(client={"stale_close_delay": 0.1})
    client = await harness.connected(hub)
    await asyncio.sleep(0.2)
    assert not client.peer.closed.is_set()


async def test_an_expired_connection_closes_3005_unless_refreshed(harness: Harness) -> None:
    hub = await harness.hub(client={"expired_close_delay": 0.1})
    await early_in_a_second()
    expire_at = int(time.time()) + 1
    lapsing, refreshed = harness.client(hub), harness.client(hub)
    result = await lapsing.connect(token(expire_at=expire_at))
    assert (result["expires"], result["ttl"]) == (True, 1)
    await refreshed.connect(token(expire_at=expire_at))
    reply = await refreshed.call("refresh", {"token": token(exp=int(time.time()) + 60)})
    assert reply["refresh"]["client"] == refreshed.session.client
    assert reply["refresh"]["expires"] is True
    assert 59 <= reply["refresh"]["ttl"] <= 60
    assert (await lapsing.closed_with(within=3)).code == 3005
    await asyncio.sleep(0.1)
    assert not refreshed.peer.closed.is_set()


async def test_refresh_with_an_expired_token_is_error_109(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    reply = await client.call("refresh", {"token": token(exp=int(time.time()) - 5)})
    assert error_code(reply) == 109


async def test_refresh_for_another_user_closes_3500(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub, "alice")
    await client.send({"id": 9, "refresh": {"token": token("mallory")}})
    assert (await client.closed_with()).code == 3500


async def test_refresh_with_a_past_expire_at_is_error_110(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    reply = await client.call("refresh", {"token": token(expire_at=int(time.time()) - 5)})
    assert error_code(reply) == 110


# --- the dispatcher and the end of a session --------------------------------------------------


async def test_a_failing_rpc_is_error_100_and_logged(
    harness: Harness, hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    @hub.rpc("boom")
    async def boom(client: ClientContext, data: Any) -> Any:
        raise RuntimeError("kaput")

    client = await harness.connected(hub)
    with caplog.at_level(logging.ERROR, logger="roomcast.session"):
        reply = await client.call("rpc", {"method": "boom"})
    assert reply["error"] == {"code": 100, "message": "internal server error", "temporary": True}
    [record] = [r for r in caplog.records if r.name == "roomcast.session"]
    assert record.exc_info is not None
    assert "kaput" in str(record.exc_info[1])
    assert client.session.state is SessionState.CONNECTED


async def test_closed_leaves_the_node_and_the_registry(harness: Harness, hub: Hub) -> None:
    client = await harness.connected(hub)
    await client.subscribe("chat:a")
    await client.subscribe("$secret", token=sub_token("$secret"))
    await client.session.closed()
    assert hub.channels() == {}
    assert hub.registry.num_clients == 0
    assert client.session.state is SessionState.CLOSED
    assert client.session.subscriptions == {}


async def test_disconnect_sends_queued_replies_before_the_close(harness: Harness, hub: Hub) -> None:
    frames: list[Frame] = []

    async def record(frame: Frame) -> None:
        frames.append(frame)

    writer = Writer(record, max_queue_bytes=1 << 20, overflow=Close(DisconnectCode.SLOW, "slow"))
    session = Session(hub.services, writer)
    await session.handle(json.dumps({"id": 1, "connect": {"token": token()}}).encode())
    await session.handle(json.dumps({"id": 2, "subscribe": {"channel": "chat:a"}}).encode())
    await session.handle(json.dumps({"id": 3, "connect": {}}).encode())
    writer.start()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    await session.closed()
    assert [json.loads(f)["id"] for f in frames[:-1] if isinstance(f, str)] == [1, 2]
    assert frames[-1] == Close(3501, "bad request: already connected")
