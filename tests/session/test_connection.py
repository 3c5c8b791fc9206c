"""Session driven without a server: frames in through ``handle``, replies out of a real Writer.

Every session here belongs to a real, started Hub (memory broker) and writes to a real Writer
whose send function records frames, as the transport would send them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import BaseModel

from roomcast import ClientContext, ClientError
from roomcast.hub import Hub
from roomcast.session.connection import Session, SessionState
from roomcast.settings import Settings
from roomcast.writer import Close, Frame, Writer

SECRET = "session-test-secret-" + "s" * 48
TIMEOUT = 2.0

CHANNELS: dict[str, Any] = {
    "without_namespace": {"allow_subscribe_for_client": True, "allow_user_limited_channels": True},
    "namespaces": [
        {
            "name": "chat",
            "allow_subscribe_for_client": True,
            "allow_publish_for_subscriber": True,
            "allow_presence_for_subscriber": True,
            "allow_history_for_subscriber": True,
        },
        {"name": "closed"},
        {"name": "dialog", "allow_user_limited_channels": True},
        {
            "name": "public",
            "allow_subscribe_for_client": True,
            "allow_subscribe_for_anonymous": True,
            "allow_publish_for_client": True,
        },
    ],
}


def token(user: str = "alice", **claims: Any) -> str:
    return jwt.encode({"sub": user, **claims}, SECRET, algorithm="HS256")


def sub_token(channel: str, user: str = "alice", **claims: Any) -> str:
    return token(user, channel=channel, **claims)


async def early_in_a_second() -> None:
    """Wait, if needed, so that a whole-second expiry set now does not straddle a tick."""
    fraction = time.time() % 1
    if fraction > 0.7:
        await asyncio.sleep(1.02 - fraction)


class Peer:
    """The far end of a Writer: every JSON line it sends, and its closing frame."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames = 0
        self.close: Close | None = None
        self.closed = asyncio.Event()

    async def send(self, frame: Frame) -> None:
        if isinstance(frame, Close):
            self.close = frame
            self.closed.set()
            return
        self.frames += 1
        text = frame.decode() if isinstance(frame, bytes) else frame
        for line in text.split("\n"):
            self.messages.put_nowait(json.loads(line))


class Client:
    """One session with its writer, spoken to as an SDK would."""

    def __init__(self, session: Session, writer: Writer, peer: Peer) -> None:
        self.session = session
        self.writer = writer
        self.peer = peer
        self.stash: list[dict[str, Any]] = []
        self._last_id = 0

    async def send(self, *commands: dict[str, Any]) -> None:
        await self.session.handle("\n".join(json.dumps(c) for c in commands).encode())

    async def call(self, method: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command with a fresh id and return its reply; pushes before it are stashed."""
        self._last_id += 1
        await self.send({"id": self._last_id, method: request or {}})
        return await self.reply(self._last_id)

    async def reply(self, command_id: int) -> dict[str, Any]:
        while True:
            message = await self.next()
            if message.get("id") == command_id:
                return message
            self.stash.append(message)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.peer.messages.get(), TIMEOUT)

    async def push(self) -> dict[str, Any]:
        """The next push: stashed ones first."""
        if self.stash:
            return self.stash.pop(0)["push"]  # type: ignore[no-any-return]
        message = await self.next()
        assert "push" in message, message
        return message["push"]  # type: ignore[no-any-return]

    async def connect(self, jwt_token: str = "") -> dict[str, Any]:
        reply = await self.call("connect", {"token": jwt_token} if jwt_token else {})
        assert "connect" in reply, reply
        return reply["connect"]  # type: ignore[no-any-return]

    async def subscribe(self, channel: str, **request: Any) -> dict[str, Any]:
        return await self.call("subscribe", {"channel": channel, **request})

    async def closed_with(self, within: float = TIMEOUT) -> Close:
        await asyncio.wait_for(self.peer.closed.wait(), within)
        assert self.peer.close is not None
        return self.peer.close

    def nothing_more(self) -> bool:
        return self.peer.messages.empty() and not self.peer.closed.is_set()


class Harness:
    """Makes started hubs and connected-to-nothing clients; tears everything down after."""

    def __init__(self) -> None:
        self._hubs: list[Hub] = []
        self._clients: list[Client] = []

    async def hub(
        self, client: dict[str, Any] | None = None, channel: dict[str, Any] | None = None
    ) -> Hub:
        client_settings: dict[str, Any] = {"token": {"hmac_secret_key": SECRET}, **(client or {})}
        settings = Settings.load(client=client_settings, channel=channel or CHANNELS)
        hub = Hub(settings)
        await hub.start()
        self._hubs.append(hub)
        return hub

    def client(self, hub: Hub) -> Client:
        peer = Peer()
        writer = Writer(
            peer.send, max_queue_bytes=1 << 20, overflow=Close(3008, "slow"), coalesce=True
        )
        writer.start()
        client = Client(Session(hub.services, writer), writer, peer)
        self._clients.append(client)
        return client

    async def connected(self, hub: Hub, user: str = "alice", **claims: Any) -> Client:
        client = self.client(hub)
        await client.connect(token(user, **claims))
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.session.closed()
            client.writer.discard()
        for hub in self._hubs:
            await hub.stop()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.close()


@pytest.fixture
async def hub(harness: Harness) -> Hub:
    return await harness.hub()


def error_code(reply: dict[str, Any]) -> int:
    assert "error" in reply, reply
    return int(reply["error"]["code"])


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
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


# --- subscribe --------------------------------------------------------------------------------


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

    writer = Writer(record, max_queue_bytes=1 << 20, overflow=Close(3008, "slow"))
    session = Session(hub.services, writer)
    await session.handle(json.dumps({"id": 1, "connect": {"token": token()}}).encode())
    await session.handle(json.dumps({"id": 2, "subscribe": {"channel": "chat:a"}}).encode())
    await session.handle(json.dumps({"id": 3, "connect": {}}).encode())
    writer.start()
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    await session.closed()
    assert [json.loads(f)["id"] for f in frames[:-1] if isinstance(f, str)] == [1, 2]
    assert frames[-1] == Close(3501, "bad request: already connected")
