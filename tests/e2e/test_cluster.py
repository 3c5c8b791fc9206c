"""One cluster, one truth: three ``roomcast serve`` nodes, A, B and C, on each of the machine's
engines (Redis, PostgreSQL, NATS) and on a Redis Cluster of the run's own
(``tests.support.redis_cluster``). ``cent`` calls go to node A; ``centrifuge-python`` clients
sit on node B and npm ``centrifuge`` clients (under Node) on node C. What A is asked to do to
a user's connections reaches them on B and C; ``info`` lists the three nodes, then two once C
is killed; ``channels`` counts B's and C's subscribers; a publish with an idempotency key,
retried through every node or after its reply was lost, is delivered once.

The nodes of a module are shared by its tests (twelve processes per run); the test that kills
node C runs last. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from cent import (
    AsyncClient,
    ChannelsRequest,
    Disconnect,
    DisconnectRequest,
    InfoRequest,
    PresenceRequest,
    PublishRequest,
    RefreshRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from centrifuge import Client  # type: ignore[import-untyped]  # no py.typed in 0.7

from tests.e2e.conftest import REDIS_CLUSTER, engine_url_of
from tests.support.ci import missing, require_program
from tests.support.node_script import NODE_DIR, NodeScript
from tests.support.python_sdk import ClientEvents, Feed
from tests.support.server import RunningServer, start_server
from tests.support.server_log import log_problems
from tests.support.shared_engines import SHARED_ENGINES
from tests.support.tcp_proxy import Proxy
from tests.support.tokens import SECRET, connection_token

pytestmark = pytest.mark.timeout(180)

WAIT = 15.0
KEY = "cluster-key"
ANNOUNCE_INTERVAL = 0.5
ANNOUNCE_TTL = 3.0
EXPIRED_DELAY = 1.0

NAMESPACES = [
    {
        "name": "room",
        "allow_subscribe_for_client": True,
        "presence": True,
        "history_size": 100,
        "history_ttl": "300s",
        "allow_recovery": True,
    },
    {"name": "plain", "allow_subscribe_for_client": True},
]

ENV = {
    "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
    "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
    "ROOMCAST_HTTP_API__KEY": KEY,
    "ROOMCAST_NODE__ANNOUNCE_INTERVAL": str(ANNOUNCE_INTERVAL),
    "ROOMCAST_NODE__ANNOUNCE_TTL": str(ANNOUNCE_TTL),
    "ROOMCAST_CLIENT__EXPIRED_CLOSE_DELAY": str(EXPIRED_DELAY),
    "ROOMCAST_CLIENT__EXPIRED_SUB_CLOSE_DELAY": str(EXPIRED_DELAY),
}


@pytest.fixture(scope="module", params=[*sorted(SHARED_ENGINES), REDIS_CLUSTER])
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The machine's engines in turn, then the run's Redis Cluster."""
    yield from engine_url_of(request.param)


@dataclass
class Cluster:
    engine_url: str
    a: RunningServer
    b: RunningServer
    c: RunningServer

    @property
    def nodes(self) -> tuple[RunningServer, RunningServer, RunningServer]:
        return self.a, self.b, self.c


def _start(engine_url: str, cwd: Any) -> RunningServer:
    return start_server("--no-examples", "--engine", engine_url, env=ENV, cwd=cwd)


@pytest.fixture(scope="module")
def cluster(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    dirs = [tmp_path_factory.mktemp(f"node-{name}") for name in "abc"]
    with ThreadPoolExecutor(3) as pool:
        started = list(pool.map(lambda cwd: _start(engine_url, cwd), dirs))
    try:
        yield Cluster(engine_url, *started)
    finally:
        for server in started:
            server.stop()
    for name, server in zip("abc", started, strict=True):
        problems = log_problems(server.log)
        assert problems == [], f"node {name}:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def node_program() -> str:
    path = require_program("node", hint="the JavaScript SDK tests need Node.js")
    for package in ("centrifuge", "ws"):
        if not (NODE_DIR / "node_modules" / package / "package.json").is_file():
            missing(f"tests/e2e/js/node_modules/{package} is missing; run `make node-deps`")
    return path


@pytest.fixture
async def cent(cluster: Cluster) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{cluster.a.http}/api", KEY, timeout=WAIT) as client:
        yield client


def unique(namespace: str) -> str:
    return f"{namespace}:{uuid.uuid4().hex[:10]}"


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> float:
    """Seconds until ``await condition()`` held; fails naming ``what`` after WAIT."""
    began = time.monotonic()
    while not await condition():
        assert time.monotonic() - began < WAIT, f"no {what} within {WAIT}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


# --- the clients: the Python SDK on B, the JavaScript SDK on C --------------------------------


@dataclass
class PythonClient:
    client: Client
    events: ClientEvents
    feeds: dict[str, Feed]


@asynccontextmanager
async def python_client(
    node: RunningServer, user: str, channels: tuple[str, ...] = ()
) -> AsyncIterator[PythonClient]:
    events = ClientEvents()
    client = Client(
        f"{node.ws}/connection/websocket",
        events=events,
        token=connection_token(user),
        proxy=None,
        timeout=WAIT,
        min_reconnect_delay=0.1,
        max_reconnect_delay=0.3,
    )
    feeds = {channel: Feed() for channel in channels}
    subs = [client.new_subscription(ch, events=feed) for ch, feed in feeds.items()]
    try:
        await asyncio.wait_for(client.connect(), WAIT)
        for sub, feed in zip(subs, feeds.values(), strict=True):
            await asyncio.wait_for(sub.subscribe(), WAIT)
            await feed.subscribed_times(1, WAIT)
        yield PythonClient(client, events, feeds)
    finally:
        await asyncio.wait_for(client.disconnect(), WAIT)


class JsClient(NodeScript):
    pass


@asynccontextmanager
async def js_client(
    program: str, node: RunningServer, user: str, channels: tuple[str, ...] = ()
) -> AsyncIterator[JsClient]:
    args = {"token": connection_token(user), "channels": list(channels), "timeout_ms": 90_000}
    script: JsClient = await JsClient.launch(
        program,
        NODE_DIR / "listen.mjs",
        f"{node.ws}/connection/websocket",
        json.dumps(args),
        label=f"{user}@C",
        seconds=90.0,
    )
    try:
        await script.wait_for("ready")
        yield script
    finally:
        if script.process.returncode is None:
            with suppress(ConnectionError, TimeoutError):
                await script.send("quit")
        await script.finish()


# --- the cluster view -------------------------------------------------------------------------


async def test_info_lists_every_node(cluster: Cluster, cent: AsyncClient) -> None:
    async def three() -> bool:
        return len((await cent.info(InfoRequest())).nodes) == 3

    await eventually(three, "three nodes in info")
    nodes = (await cent.info(InfoRequest())).nodes
    assert len({n.uid for n in nodes}) == 3
    assert all(n.version and n.name for n in nodes)
    for other in (cluster.b, cluster.c):  # every node sees the same cluster
        async with AsyncClient(f"{other.http}/api", KEY, timeout=WAIT) as there:
            assert {n.uid for n in (await there.info(InfoRequest())).nodes} == {
                n.uid for n in nodes
            }


async def test_channels_counts_the_subscribers_of_b_and_c(
    cluster: Cluster, cent: AsyncClient, node_program: str
) -> None:
    channel = unique("plain")
    async with (
        python_client(cluster.b, "counted-b", (channel,)),
        js_client(node_program, cluster.c, "counted-c", (channel,)),
    ):
        channels = (await cent.channels(ChannelsRequest(pattern=channel))).channels
        assert channels[channel].num_clients == 2

        async def announced() -> bool:  # each node's own counts, as it announced them
            nodes = (await cent.info(InfoRequest())).nodes
            return sum(n.num_subs for n in nodes) >= 2 and all(
                n.num_clients >= 1 for n in nodes[1:]
            )

        await eventually(announced, "B's and C's counts in info")


# --- actions through A on the connections of B and C ------------------------------------------


async def test_disconnect_through_a_closes_the_users_connections_on_b_and_c(
    cluster: Cluster, cent: AsyncClient, node_program: str
) -> None:
    async with (
        python_client(cluster.b, "dave") as on_b,
        python_client(cluster.b, "bystander") as bystander,
        js_client(node_program, cluster.c, "dave") as on_c,
    ):
        request = DisconnectRequest(user="dave", disconnect=Disconnect(code=4501, reason="banned"))
        await cent.disconnect(request)
        await on_b.events.until(
            lambda: any(d.code == 4501 for d in on_b.events.disconnected), "4501 on B", WAIT
        )
        assert (await on_c.wait_for("disconnected"))["code"] == 4501
        await asyncio.sleep(0.2)
        assert bystander.events.disconnected == []


async def test_subscribe_and_unsubscribe_through_a_reach_b_and_c(
    cluster: Cluster, cent: AsyncClient, node_program: str
) -> None:
    channel = unique("room")
    async with (
        python_client(cluster.b, "erin") as on_b,
        js_client(node_program, cluster.c, "erin") as on_c,
    ):
        await cent.subscribe(
            SubscribeRequest(
                user="erin", channel=channel, data={"welcome": 1}, info={"role": "guest"}
            )
        )
        await on_b.events.until(lambda: bool(on_b.events.server_subscribed), "subscribe", WAIT)
        assert on_b.events.server_subscribed[0].data == {"welcome": 1}
        pushed = await on_c.wait_for("server_subscribed", channel=channel)
        assert pushed["data"] == {"welcome": 1}

        async def both_present() -> bool:
            presence = (await cent.presence(PresenceRequest(channel=channel))).presence
            return len(presence) == 2 and all(
                entry.chan_info == {"role": "guest"} for entry in presence.values()
            )

        await eventually(both_present, "both subscribers in presence with their info")
        await cent.publish(PublishRequest(channel=channel, data={"seq": 1}))
        await on_b.events.until(lambda: bool(on_b.events.server_publications), "pub on B", WAIT)
        assert on_b.events.server_publications[0].pub.data == {"seq": 1}
        assert (await on_c.wait_for("server_publication"))["data"] == {"seq": 1}

        await cent.unsubscribe(UnsubscribeRequest(user="erin", channel=channel))
        await on_b.events.until(lambda: bool(on_b.events.server_unsubscribed), "unsub", WAIT)
        await on_c.wait_for("server_unsubscribed", channel=channel)


def expired_times(client: PythonClient, code: int = 3005) -> int:
    """How often the client was closed with ``code``, which it reconnects after."""
    return sum(c.code == code for c in client.events.connecting)


async def test_refresh_through_a_reaches_b_and_c(
    cluster: Cluster, cent: AsyncClient, node_program: str
) -> None:
    channel = unique("room")
    async with (
        python_client(cluster.b, "frank", (channel,)) as on_b,
        js_client(node_program, cluster.c, "frank", (channel,)) as on_c,
    ):
        await cent.refresh(RefreshRequest(user="frank", expire_at=int(time.time()) + 1))
        # expired after its second, plus the close delay: 3005, after which the SDKs reconnect
        await on_b.events.until(lambda: expired_times(on_b) >= 1, "3005 on B", WAIT)
        await on_c.wait_for("connecting", code=3005)
        await on_c.wait_for("connected")
        await on_b.events.until(lambda: len(on_b.events.connected) >= 2, "reconnect", WAIT)

        await cent.refresh(RefreshRequest(user="frank", expired=True))
        await on_b.events.until(lambda: expired_times(on_b) >= 2, "3005 again on B", WAIT)
        await on_c.wait_for("connecting", code=3005)


async def test_subscribe_options_reach_b_and_c(
    cluster: Cluster, cent: AsyncClient, node_program: str
) -> None:
    channel = unique("room")
    first = await cent.publish(PublishRequest(channel=channel, data={"seq": 1}))
    for seq in (2, 3):
        await cent.publish(PublishRequest(channel=channel, data={"seq": seq}))
    since = {"offset": first.offset, "epoch": first.epoch}
    async with (
        python_client(cluster.b, "gina") as on_b,
        js_client(node_program, cluster.c, "gina") as on_c,
    ):
        body = {
            "user": "gina",
            "channel": channel,
            "recover_since": since,
            "expire_at": int(time.time()) + 2,
            "override": {"presence": {"value": False}},
        }
        assert await _api(cluster.a, "subscribe", body) == {"result": {}}
        # recover_since: the push names the position asked for, the two that followed come next
        await on_b.events.until(lambda: len(on_b.events.server_publications) >= 2, "replay", WAIT)
        subscribed = on_b.events.server_subscribed[0]
        assert subscribed.recoverable
        assert subscribed.stream_position.offset == first.offset
        assert [p.pub.data["seq"] for p in on_b.events.server_publications] == [2, 3]
        pushed = await on_c.wait_for("server_subscribed", channel=channel)
        assert (pushed["offset"], pushed["recoverable"]) == (first.offset, True)
        assert (await on_c.wait_for("server_publication"))["data"] == {"seq": 2}
        assert (await on_c.wait_for("server_publication"))["data"] == {"seq": 3}
        # override presence false: neither appears in the channel's presence
        assert (await cent.presence(PresenceRequest(channel=channel))).presence == {}
        # expire_at: the connections close with 3006 once it passed (plus the close delay)
        await on_b.events.until(lambda: expired_times(on_b, 3006) >= 1, "3006 on B", WAIT)
        await on_c.wait_for("connecting", code=3006)


# --- publishing once ---------------------------------------------------------------------------


async def _api(node: RunningServer, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """The reply of ``POST /api/<method>`` on ``node`` (raw, for fields ``cent`` lacks)."""
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            f"{node.http}/api/{method}", json=body, headers={"X-API-Key": KEY}, timeout=WAIT
        )
    result: dict[str, Any] = reply.json()
    return result


async def _publish(node: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    return await _api(node, "publish", body)


@pytest.mark.parametrize("namespace", ["room", "plain"])
async def test_an_idempotent_publish_retried_through_each_node_is_delivered_once(
    cluster: Cluster, node_program: str, namespace: str
) -> None:
    channel = unique(namespace)
    body = {"channel": channel, "data": {"seq": 1}, "idempotency_key": "order-1"}
    async with (
        python_client(cluster.b, "reader-b", (channel,)) as on_b,
        js_client(node_program, cluster.c, "reader-c", (channel,)) as on_c,
    ):
        results = [(await _publish(node, body))["result"] for node in cluster.nodes]
        first, *retries = results
        assert all(r.get("suppressed") is True for r in retries), results
        assert {(r.get("offset"), r.get("epoch")) for r in results} == {
            (first.get("offset"), first.get("epoch"))
        }
        await _publish(cluster.a, {"channel": channel, "data": {"seq": 2}})  # the marker
        feed = on_b.feeds[channel]
        await feed.received(2)
        await on_c.wait_for("publication", data={"seq": 2})
        assert feed.seqs == [1, 2]
        assert [e["data"]["seq"] for e in on_c.named("publication")] == [1, 2]


def _through(url: str, proxy: Proxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.mark.parametrize("namespace", ["room", "plain"])
async def test_a_publish_whose_reply_was_lost_is_retried_once(
    cluster: Cluster, tmp_path: Any, namespace: str
) -> None:
    engine = urlsplit(cluster.engine_url)
    if engine.scheme == "redis+cluster":
        pytest.skip(
            "a proxy in front of one seed cannot mute a cluster: the client goes on to the "
            "nodes at the addresses the cluster announces"
        )
    proxy = Proxy(engine.hostname or "127.0.0.1", engine.port or 0)
    await proxy.start()
    channel = unique(namespace)
    key = f"lost-reply-{uuid.uuid4().hex[:6]}"
    body = {"channel": channel, "data": {"seq": 1}, "idempotency_key": key}
    # The request that carries the key reaches the engine, which does the work; from then on
    # D hears nothing back. NATS carries the key base64-encoded in its Nats-Msg-Id.
    carried = key.encode()
    if engine.scheme == "nats":
        carried = base64.urlsafe_b64encode(carried).rstrip(b"=")
    try:
        # node D reaches the engine through the proxy; it must run while this loop pumps
        node_d = await asyncio.to_thread(_start, _through(cluster.engine_url, proxy), tmp_path)
        try:
            async with python_client(cluster.b, "witness", (channel,)) as witness:
                proxy.mute_replies_after = carried
                lost = await _publish(node_d, body)
                assert proxy.mute_replies, "the key never went through the proxy"
                assert lost["error"]["code"] == 100, lost
                retried = (await _publish(cluster.a, body))["result"]  # a client retries
                assert retried["suppressed"] is True, retried
                proxy.mute_replies = False
                proxy.abort_connections()  # D's links were left waiting: let it reconnect

                async def through_d_again() -> bool:
                    reply = await _publish(node_d, body)
                    return "result" in reply and reply["result"] == retried

                await eventually(through_d_again, "the same result through D")
                await _publish(cluster.a, {"channel": channel, "data": {"seq": 2}})
                await witness.feeds[channel].received(2)
                assert witness.feeds[channel].seqs == [1, 2], witness.feeds[channel]
                if namespace == "room":
                    query = {"channel": channel, "limit": -1}
                    history = (await _api(cluster.a, "history", query))["result"]["publications"]
                    assert [p["data"]["seq"] for p in history] == [1, 2]
                    assert history[0]["offset"] == retried["offset"]
        finally:
            node_d.stop()
    finally:
        await proxy.close()


# --- last: a node killed ----------------------------------------------------------------------


async def test_a_killed_node_drops_out_of_info_within_the_ttl(
    cluster: Cluster, cent: AsyncClient
) -> None:
    async def three() -> bool:
        return len((await cent.info(InfoRequest())).nodes) == 3

    await eventually(three, "three nodes")
    assert cluster.c.stop(signal.SIGKILL) == -signal.SIGKILL
    killed_at = time.monotonic()

    async def two() -> bool:
        return len((await cent.info(InfoRequest())).nodes) == 2

    await eventually(two, "two nodes after the kill")
    seconds = time.monotonic() - killed_at
    assert seconds <= ANNOUNCE_TTL + ANNOUNCE_INTERVAL + 1.0, seconds

    async def channels_answer() -> bool:  # the survey no longer waits for C
        try:
            await cent.channels(ChannelsRequest())
        except Exception:
            return False
        return True

    await eventually(channels_answer, "channels once C dropped out")
