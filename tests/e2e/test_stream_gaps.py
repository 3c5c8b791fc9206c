"""A subscriber whose stream shows a gap is sent an unsubscribe with code 2500 ("insufficient
state") on the wire, and nothing past the gap; subscribing again with ``recover`` from where
it stood then gets what it missed, or ``recovered: false`` when the stream is another one. A
subscription the server made (a token's ``channels``) cannot be subscribed again by the
client, so its gap ends the connection with 3010 instead, and the SDK reconnects and resumes
it through connect's ``subs``: centrifuge-python, through a relay, recovers what it missed.

Raw ``websockets`` clients speak the Centrifuge client protocol v2 (JSON) to a real
``roomcast serve``. Two gaps: the stream is lost and starts a new epoch (``history_remove``),
and a publication enters the stream without reaching the node (another writer adds it to the
Redis stream directly), so the next one the node sees skips an offset. Every wait is bounded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.engines import create_history_store
from roomcast.engines.base import HistoryOptions
from roomcast.publication import Publication
from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.python_sdk import sdk_client
from tests.support.server import RunningServer, start_server
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.tcp_proxy import proxy_to
from tests.support.tokens import SECRET, connection_token
from tests.support.wsclient import TIMEOUT

API_KEY = "k"
QUIET = 0.3
KEPT = HistoryOptions(size=100, ttl=300.0)
NAMESPACE = {
    "name": "feed",
    "history_size": KEPT.size,
    "history_ttl": f"{KEPT.ttl:.0f}s",
    "force_recovery": True,
    "allow_subscribe_for_client": True,
}
INSUFFICIENT_STATE = {"code": 2500, "reason": "insufficient state"}


def _serve(cwd: Path, *args: str) -> RunningServer:
    env = {"ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE])}
    return start_server(
        "--no-examples", "--insecure", "--api-key", API_KEY, *args, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def memory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = _serve(tmp_path_factory.mktemp("gaps-memory"), "--engine", "memory://")
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    redis = SHARED_ENGINES["redis"]
    redis.require("the stream gap test on Redis")
    prefix = unique_prefix()
    yield redis.url(prefix)
    redis.cleanup(prefix)


@pytest.fixture(scope="module")
def redis_server(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    server = _serve(tmp_path_factory.mktemp("gaps-redis"), "--engine", redis_url)
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log


async def publish(server: RunningServer, channel: str, data: Any) -> dict[str, Any]:
    """Publish through the server API; its result (``offset``, ``epoch``)."""
    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=TIMEOUT) as http:
        reply = await http.post(
            f"{server.http}/api/publish", json={"channel": channel, "data": data}
        )
        body: dict[str, Any] = reply.json()
    assert "error" not in body, body
    result: dict[str, Any] = body["result"]
    return result


async def history_remove(server: RunningServer, channel: str) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=TIMEOUT) as http:
        reply = await http.post(f"{server.http}/api/history_remove", json={"channel": channel})
    assert "error" not in reply.json(), reply.text


async def told_to_resubscribe(client: ProtocolClient, channel: str) -> list[Any]:
    """Waits for the 2500 unsubscribe; the data of the publications pushed before it, after
    checking that none follows it."""
    pubs: list[Any] = []
    while True:
        push = await client.next_push()
        assert push["channel"] == channel, push
        if "unsubscribe" in push:
            assert push["unsubscribe"] == INSUFFICIENT_STATE, push
            break
        pubs.append(push["pub"]["data"])
    assert await client.pushes_within(QUIET) == []
    return pubs


@pytest.fixture
async def subscriber(memory_server: RunningServer) -> AsyncIterator[ProtocolClient]:
    async with protocol_client(memory_server.ws) as client:
        yield client


async def test_a_new_epoch_ends_the_subscription_with_2500(
    memory_server: RunningServer, subscriber: ProtocolClient
) -> None:
    channel = f"feed:{uuid.uuid4().hex[:12]}"
    await subscriber.subscribe(channel)
    first = await publish(memory_server, channel, {"n": 1})
    await history_remove(memory_server, channel)
    await publish(memory_server, channel, {"n": 2})  # the first of a new epoch

    assert await told_to_resubscribe(subscriber, channel) == [{"n": 1}]
    again = await subscriber.subscribe(
        channel, recover=True, offset=first["offset"], epoch=first["epoch"]
    )
    # False fields are left out of the JSON, as Centrifugo leaves them out.
    assert (again["was_recovering"], again.get("recovered", False)) == (True, False)
    assert again.get("publications", []) == []
    assert again["epoch"] != first["epoch"]


async def test_a_skipped_offset_ends_the_subscription_with_2500_and_recovery_fills_it(
    redis_server: RunningServer, redis_url: str
) -> None:
    channel = f"feed:{uuid.uuid4().hex[:12]}"
    store = create_history_store(redis_url)
    await store.start()
    try:
        async with protocol_client(redis_server.ws) as client:
            await client.subscribe(channel)
            first = await publish(redis_server, channel, {"n": 1})
            # Another writer adds to the stream without telling the nodes: offset 2 is missed.
            missed = await store.add(channel, Publication(data=b'{"n":2}'), KEPT)
            assert (missed.offset, missed.epoch) == (first["offset"] + 1, first["epoch"])
            await publish(redis_server, channel, {"n": 3})

            assert await told_to_resubscribe(client, channel) == [{"n": 1}]
            again = await client.subscribe(
                channel, recover=True, offset=first["offset"], epoch=first["epoch"]
            )
    finally:
        await store.close()
    assert (again["was_recovering"], again["recovered"]) == (True, True)
    assert [(p["offset"], p["data"]) for p in again["publications"]] == [
        (first["offset"] + 1, {"n": 2}),
        (first["offset"] + 2, {"n": 3}),
    ]


@pytest.fixture(scope="module")
def redis_token_server(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The Redis node, with connection tokens instead of ``--insecure`` (a token's
    ``channels`` are what makes a subscription server-side)."""
    env = {
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE]),
        "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
    }
    server = start_server(
        "--no-examples", "--api-key", API_KEY, "--engine", redis_url,
        env=env, cwd=tmp_path_factory.mktemp("gaps-tokens"),
    )  # fmt: skip
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log


async def test_a_gap_in_a_server_side_subscription_reconnects_the_sdk_which_recovers(
    redis_token_server: RunningServer, redis_url: str
) -> None:
    channel = f"feed:{uuid.uuid4().hex[:12]}"
    token = connection_token("owner", channels=[channel])
    store = create_history_store(redis_url)
    await store.start()
    try:
        async with (
            proxy_to(redis_token_server.port) as relay,
            sdk_client(relay, token) as (_client, events),
        ):
            await events.until(lambda: len(events.server_subscribed) == 1, "subscribed", TIMEOUT)
            first = await publish(redis_token_server, channel, {"seq": 1})
            await events.until(lambda: len(events.server_publications) == 1, "seq 1", TIMEOUT)
            # Another writer adds to the stream without telling the nodes: offset 2 is missed.
            await store.add(channel, Publication(data=b'{"seq":2}'), KEPT)
            await publish(redis_token_server, channel, {"seq": 3})

            await events.until(lambda: len(events.connected) == 2, "reconnected", TIMEOUT)
            await events.until(lambda: len(events.server_publications) == 3, "recovered", TIMEOUT)
            again = events.server_subscribed[-1]
    finally:
        await store.close()
    # The SDK's own first connect, then the server's 3010, which it reconnects after.
    assert [ctx.code for ctx in events.connecting][1:] == [3010]
    assert (again.was_recovering, again.recovered) == (True, True)
    seqs = [p.pub.data["seq"] for p in events.server_publications]
    offsets = [p.pub.offset for p in events.server_publications]
    assert seqs == [1, 2, 3]
    assert offsets == [first["offset"], first["offset"] + 1, first["offset"] + 2]
