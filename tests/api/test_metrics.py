"""``GET /metrics`` on a real server reports what the README's table says it does: clients,
users, channels, subscriptions, publications, deliveries, stream gaps and slow disconnects,
and the instruments (messages received and sent per transport and command, command durations
and errors, connects, disconnects by code, recoveries, broker publish latency and pub/sub lag,
history and presence operations per engine, server API durations), each checked by its exact
change over a scripted session, on the memory engines and on Redis."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.slow_reader import small_buffer_client
from tests.support.tokens import SECRET, connection_token
from tests.support.wsclient import TIMEOUT, closed_with

KEY = "k"
QUEUE_MAX_SIZE = 65536
REC = {
    "name": "rec",
    "history_size": 100,
    "history_ttl": "300s",
    "force_recovery": True,
    "presence": True,
    "allow_subscribe_for_client": True,
    "allow_publish_for_subscriber": True,
    "allow_presence_for_subscriber": True,
    "allow_history_for_subscriber": True,
}
"""A namespace whose subscribers recover and whose channels keep presence."""

FEED = {
    "name": "feed",
    "history_size": 100,
    "history_ttl": "300s",
    "force_positioning": True,
    "allow_subscribe_for_client": True,
}
"""A namespace whose subscribers track their position in the stream, so that a gap shows."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        "--api-key",
        KEY,
        "--insecure",
        "--no-examples",
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CLIENT__QUEUE_MAX_SIZE": str(QUEUE_MAX_SIZE),
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([FEED, REC]),
            "ROOMCAST_ENGINE__HISTORY": "memory://",
        },
        cwd=tmp_path_factory.mktemp("roomcast-metrics"),
    )
    yield server
    server.stop()


@pytest.fixture
async def api(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.http, headers={"X-API-Key": KEY}, timeout=TIMEOUT
    ) as client:
        yield client


async def call(api: httpx.AsyncClient, method: str, **params: Any) -> None:
    """One server API call; fails unless it succeeded."""
    reply = await api.post(f"/api/{method}", json=params)
    assert reply.status_code == 200, reply.text
    assert "error" not in reply.json(), reply.text


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} missing from:\n{text}"
    return float(match.group(1))


async def scrape(server: RunningServer) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{server.http}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def settled(server: RunningServer, name: str, value: float) -> str:
    """A scrape in which gauge ``name`` reads ``value`` (a closed client may take a moment
    to leave); fails after ``TIMEOUT``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        text = await scrape(server)
        if metric(text, name) == value:
            return text
        assert loop.time() < deadline, f"{name} stayed {metric(text, name)}, not {value}"
        await asyncio.sleep(0.05)


async def test_metrics_follow_clients_and_deliveries(server: RunningServer) -> None:
    before = await scrape(server)
    assert metric(before, "roomcast_clients") == 0
    async with protocol_client(server.ws) as one, protocol_client(server.ws) as two:
        await one.subscribe("news")
        await two.subscribe("news")
        async with httpx.AsyncClient(timeout=5) as http:
            reply = await http.post(
                f"{server.http}/api/publish",
                json={"channel": "news", "data": {"n": 1}},
                headers={"X-API-Key": KEY},
            )
        assert reply.json() == {"result": {}}
        for client in (one, two):
            assert (await client.push("news", "pub"))["data"] == {"n": 1}
        during = await scrape(server)
        assert metric(during, "roomcast_clients") == 2
        assert metric(during, "roomcast_channels") == 1
        assert metric(during, "roomcast_subscriptions") == 2
        published = metric(during, "roomcast_publications_total")
        assert published - metric(before, "roomcast_publications_total") == 1
        delivered = metric(during, "roomcast_deliveries_total")
        assert delivered - metric(before, "roomcast_deliveries_total") == 2


async def test_users_count_distinct_users_of_connected_clients(server: RunningServer) -> None:
    await settled(server, "roomcast_clients", 0)
    async with AsyncExitStack() as stack:
        for user in ("alice", "alice", "bob"):
            await stack.enter_async_context(
                protocol_client(server.ws, token=connection_token(user), user=user)
            )
        during = await scrape(server)
        assert metric(during, "roomcast_clients") == 3
        assert metric(during, "roomcast_users") == 2
    after = await settled(server, "roomcast_clients", 0)
    assert metric(after, "roomcast_users") == 0


async def test_a_stream_gap_is_counted_once(server: RunningServer, api: httpx.AsyncClient) -> None:
    channel = f"feed:{uuid.uuid4().hex[:12]}"
    before = await scrape(server)
    async with protocol_client(server.ws) as subscriber:
        await subscriber.subscribe(channel)
        await call(api, "publish", channel=channel, data={"n": 1})
        assert (await subscriber.push(channel, "pub"))["data"] == {"n": 1}
        # The stream is lost (a new epoch): its next publication does not follow the last one.
        await call(api, "history_remove", channel=channel)
        await call(api, "publish", channel=channel, data={"n": 2})
        assert (await subscriber.push(channel, "unsubscribe"))["code"] == 2500
        await call(api, "publish", channel=channel, data={"n": 3})  # nobody left to break for
    after = await scrape(server)
    gaps = metric(after, "roomcast_stream_gaps_total")
    assert gaps - metric(before, "roomcast_stream_gaps_total") == 1


async def test_a_slow_disconnect_is_counted_once(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    channel, count, pad = f"flood-{uuid.uuid4().hex[:12]}", 400, "x" * 20_000
    assert count * len(pad) > 4 * 1024 * 1024 + QUEUE_MAX_SIZE  # past any socket buffer
    before = await scrape(server)
    async with small_buffer_client(server.host, server.port, "/connection/websocket") as slow:
        await slow.send(json.dumps({"id": 1, "connect": {}}))
        await slow.send(json.dumps({"id": 2, "subscribe": {"channel": channel}}))
        replies: list[dict[str, Any]] = []
        while len(replies) < 2:
            frame = await asyncio.wait_for(slow.recv(), TIMEOUT)
            replies += [json.loads(line) for line in str(frame).splitlines() if line.strip()]
        assert [reply["id"] for reply in replies] == [1, 2], replies
        slow.transport.pause_reading()
        for n in range(count):
            await call(api, "publish", channel=channel, data={"n": n, "pad": pad})
        slow.transport.resume_reading()
        assert await closed_with(slow, 15.0) == (3008, "slow")
    after = await settled(server, "roomcast_clients", 0)
    cut_off = metric(after, "roomcast_slow_disconnects_total")
    assert cut_off - metric(before, "roomcast_slow_disconnects_total") == 1


async def test_a_stalled_subscriber_is_cut_off_without_holding_up_the_others(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    """A reader that reads nothing is told from one that is behind: it is closed after the
    stall timeout (0.3 s), long before the lag timeout (2 s) a merely lagging one gets, and
    no publish waits for it longer than that."""
    channel, count, pad = f"stall-{uuid.uuid4().hex[:12]}", 200, "x" * 20_000
    before = await scrape(server)
    async with (
        small_buffer_client(server.host, server.port, "/connection/websocket") as stalled,
        protocol_client(server.ws) as healthy,
    ):
        await stalled.send(json.dumps({"id": 1, "connect": {}}))
        await stalled.send(json.dumps({"id": 2, "subscribe": {"channel": channel}}))
        replies: list[dict[str, Any]] = []
        while len(replies) < 2:
            frame = await asyncio.wait_for(stalled.recv(), TIMEOUT)
            replies += [json.loads(line) for line in str(frame).splitlines() if line.strip()]
        await healthy.subscribe(channel)
        stalled.transport.pause_reading()
        loop = asyncio.get_running_loop()
        longest = 0.0
        for n in range(count):
            began = loop.time()
            await call(api, "publish", channel=channel, data={"n": n, "pad": pad})
            longest = max(longest, loop.time() - began)
        received = [(await healthy.push(channel, "pub"))["data"]["n"] for _ in range(count)]
        stalled.transport.resume_reading()
        assert await closed_with(stalled, 15.0) == (3008, "slow")
    assert received == list(range(count))
    assert longest < 1.5, f"a publish waited {longest:.2f}s for a reader that read nothing"
    after = await settled(server, "roomcast_clients", 0)
    for name, cut_offs in (
        ("roomcast_slow_disconnects_total", 1),
        ("roomcast_stall_disconnects_total", 1),
        ("roomcast_lag_timeout_disconnects_total", 0),
    ):
        assert metric(after, name) - metric(before, name) == cut_offs, name


async def test_the_control_plane_is_counted(server: RunningServer) -> None:
    text = await scrape(server)  # the node announced itself when it started
    assert metric(text, "roomcast_announcements_total") >= 1
    assert metric(text, "roomcast_nodes") == 1  # alone on the memory engine
    sent = metric(text, "roomcast_announcement_bytes_total")
    assert 0 < sent <= metric(text, "roomcast_control_sent_bytes_total")


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How far sample ``name`` with exactly ``labels`` moved between two scrapes (a sample
    not there yet counts as 0)."""
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def scraped_when(
    server: RunningServer, done: Callable[[Samples], bool], what: str
) -> Samples:
    """The first scrape for which ``done`` holds (a server finishes a connection's end a
    moment after the client saw its close); fails after ``TIMEOUT``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        now = samples(await scrape(server))
        if done(now):
            return now
        assert loop.time() < deadline, f"never {what}"
        await asyncio.sleep(0.05)


WS = {"transport": "websocket"}


async def test_a_scripted_session_moves_every_instrument_by_its_amount(
    server: RunningServer, api: httpx.AsyncClient
) -> None:
    channel = f"rec:{uuid.uuid4().hex[:12]}"
    await settled(server, "roomcast_clients", 0)
    before = samples(await scrape(server))
    alice = protocol_client(server.ws, token=connection_token("alice"), user="alice")
    async with alice as a:
        subscribed = await a.subscribe(channel)
        for n in range(3):
            await a.call("publish", channel=channel, data={"n": n})
            assert (await a.push(channel, "pub"))["data"] == {"n": n}
        await a.call("presence", channel=channel)
        await a.call("presence_stats", channel=channel)
        await a.call("history", channel=channel, limit=10)
        again = await a.command(subscribe={"channel": channel})
        assert again["error"]["code"] == 105  # already subscribed
        epoch = subscribed["epoch"]
        async with (
            protocol_client(server.ws, token=connection_token("bob"), user="bob") as bob,
            protocol_client(server.ws, token=connection_token("carol"), user="carol") as carol,
        ):
            resumed = await bob.subscribe(channel, recover=True, offset=1, epoch=epoch)
            assert resumed["recovered"] is True
            assert [p["data"] for p in resumed["publications"]] == [{"n": 1}, {"n": 2}]
            lost = await carol.subscribe(channel, recover=True, offset=1, epoch="another")
            assert lost.get("recovered", False) is False
            await call(api, "publish", channel=channel, data={"n": 3})
            for client in (a, bob, carol):
                assert (await client.push(channel, "pub"))["data"] == {"n": 3}
            await call(api, "disconnect", user="alice")
            assert await a.closed_with() == (3503, "force disconnect")
    after = await scraped_when(
        server,
        lambda now: (
            moved(before, now, "roomcast_client_disconnects_total", **WS, code="1000") >= 2
            and moved(
                before,
                now,
                "roomcast_presence_operation_duration_seconds_count",
                engine="memory",
                operation="remove",
            )
            >= 3
        ),
        "three ended connections and their presence removed",
    )

    def counted(name: str, **labels: str) -> float:
        return moved(before, after, name, **labels)

    received = "roomcast_transport_messages_received_total"
    expected_commands = {
        "connect": 3,
        "subscribe": 4,
        "publish": 3,
        "presence": 1,
        "presence_stats": 1,
        "history": 1,
    }
    for method, count in expected_commands.items():
        assert counted(received, **WS, method=method) == count, method
        assert counted("roomcast_client_command_duration_seconds_count", method=method) == count
    assert counted(received, **WS, method="pong") == 0
    sent = "roomcast_transport_messages_sent_total"
    assert counted(sent, **WS, type="reply") == 13  # alice 9, bob 2, carol 2
    assert counted(sent, **WS, type="publication") == 6  # 3 to alice, then 1 to each of three
    assert counted(sent, transport="plain_websocket", type="publication") == 0
    assert counted("roomcast_deliveries_total") == 6
    assert counted("roomcast_client_command_errors_total", method="subscribe", code="105") == 1
    assert counted("roomcast_client_connects_total", **WS) == 3
    assert counted("roomcast_client_disconnects_total", **WS, code="3503") == 1
    assert counted("roomcast_client_disconnects_total", **WS, code="1000") == 2
    assert counted("roomcast_client_recoveries_total", recovered="true") == 1
    assert counted("roomcast_client_recoveries_total", recovered="false") == 1
    assert counted("roomcast_broker_publish_duration_seconds_count", engine="memory") == 4
    assert counted("roomcast_broker_pubsub_lag_seconds_count", engine="memory") == 4
    history = "roomcast_history_operation_duration_seconds_count"
    assert counted(history, engine="memory", operation="add") == 4
    assert counted(history, engine="memory", operation="read") == 4  # 3 subscribes, 1 history
    presence = "roomcast_presence_operation_duration_seconds_count"
    assert counted(presence, engine="memory", operation="add") == 3
    assert counted(presence, engine="memory", operation="get") == 1
    assert counted(presence, engine="memory", operation="stats") == 1
    assert counted(presence, engine="memory", operation="remove") == 3
    for method in ("publish", "disconnect"):
        assert counted("roomcast_api_command_duration_seconds_count", method=method) == 1
    lag_sum = counted("roomcast_broker_pubsub_lag_seconds_sum", engine="memory")
    assert 0 <= lag_sum < 1.0  # in one process the lag is the time of a function call


async def test_the_process_and_build_are_described(server: RunningServer) -> None:
    text = await scrape(server)
    now = samples(text)
    assert any(name == "roomcast_build_info" and value == 1 for (name, _), value in now.items())
    assert ("process_resident_memory_bytes", frozenset()) in now
    assert "_created" not in text  # roomcast serve drops the counters' creation times


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    redis = SHARED_ENGINES["redis"]
    redis.require("the metrics test on Redis")
    prefix = unique_prefix()
    server = start_server(
        "--api-key",
        KEY,
        "--insecure",
        "--no-examples",
        "--engine",
        redis.url(prefix),
        env={"ROOMCAST_CHANNEL__NAMESPACES": json.dumps([REC])},
        cwd=tmp_path_factory.mktemp("roomcast-metrics-redis"),
    )
    yield server
    server.stop()
    redis.cleanup(prefix)


async def test_engine_timings_are_labelled_with_their_engine(redis_server: RunningServer) -> None:
    channel = f"rec:{uuid.uuid4().hex[:12]}"
    before = samples(await scrape(redis_server))
    async with (
        httpx.AsyncClient(base_url=redis_server.http, headers={"X-API-Key": KEY}) as api,
        protocol_client(redis_server.ws) as subscriber,
    ):
        await subscriber.subscribe(channel)
        await call(api, "publish", channel=channel, data={"n": 1})
        assert (await subscriber.push(channel, "pub"))["data"] == {"n": 1}
        await call(api, "presence", channel=channel)
        after = samples(await scrape(redis_server))
    assert (
        moved(before, after, "roomcast_broker_publish_duration_seconds_count", engine="redis") == 1
    )
    assert moved(before, after, "roomcast_broker_pubsub_lag_seconds_count", engine="redis") == 1
    lag = moved(before, after, "roomcast_broker_pubsub_lag_seconds_sum", engine="redis")
    assert 0 < lag < 5.0  # through Redis and back, on one machine's clock
    history = "roomcast_history_operation_duration_seconds_count"
    assert moved(before, after, history, engine="redis", operation="read") == 1
    presence = "roomcast_presence_operation_duration_seconds_count"
    assert moved(before, after, presence, engine="redis", operation="add") == 1
    assert moved(before, after, presence, engine="redis", operation="get") == 1
    assert moved(before, after, presence, engine="memory", operation="add") == 0
