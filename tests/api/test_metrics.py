"""``GET /metrics`` on a real server reports what the README's table says it does: clients,
users, channels, subscriptions, publications, deliveries, stream gaps and slow disconnects,
each checked by its exact change over a scripted session."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.slow_reader import small_buffer_client
from tests.support.tokens import SECRET, connection_token
from tests.support.wsclient import TIMEOUT, closed_with

KEY = "k"
QUEUE_MAX_SIZE = 65536
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
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([FEED]),
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


async def test_the_control_plane_is_counted(server: RunningServer) -> None:
    text = await scrape(server)  # the node announced itself when it started
    assert metric(text, "roomcast_announcements_total") >= 1
    assert metric(text, "roomcast_nodes") == 1  # alone on the memory engine
    sent = metric(text, "roomcast_announcement_bytes_total")
    assert 0 < sent <= metric(text, "roomcast_control_sent_bytes_total")
