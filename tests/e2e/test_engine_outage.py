"""While the engine cannot be reached, a client's publish and history read get error 100
(internal, temporary) within seconds instead of hanging, and the connection stays open;
``/readyz`` answers 503 while ``/healthz`` stays 200. Once the link is back the node
reconnects by itself, ``/readyz`` is 200 again, every subscriber that tracks its position is
told to recover (unsubscribe 2500), and recovering gets what was published since.

One ``roomcast serve`` on the machine's Redis, reached through a TCP proxy in the test
(``tests.support.tcp_proxy``) that the test cuts (connections refused and aborted) or freezes
(a black hole). Raw ``websockets`` clients speak the Centrifuge client protocol v2 (JSON).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.server_log import log_problems
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.tcp_proxy import Proxy

PROMPT = 4.0
"""The longest a command may take to fail while the engine is down (the engine's own timeout
is 2 s)."""
NOT_READY_WITHIN = 10.0
READY_AGAIN_WITHIN = 15.0
"""Reconnecting backs off from 0.1 s, doubling: a few seconds' outage stays well below this."""
NAMESPACE = {
    "name": "feed",
    "history_size": 100,
    "history_ttl": "300s",
    "force_recovery": True,
    "allow_subscribe_for_client": True,
}


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    redis = SHARED_ENGINES["redis"]
    redis.require("the engine outage tests")
    proxy = Proxy(redis.host, redis.port)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def server(proxy: Proxy, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A node whose engine is Redis through ``proxy``; the test fails if the node logged an
    error, or a traceback other than for the unreachable engine."""
    prefix = unique_prefix()
    engine = f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}"
    env = {"ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE])}
    # In a thread: the node reaches Redis through the proxy, which runs on this event loop.
    server = await asyncio.to_thread(
        start_server, "--no-examples", "--insecure", "--engine", engine, env=env, cwd=tmp_path
    )
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(SHARED_ENGINES["redis"].cleanup, prefix)
    assert log_problems(server.log) == [], server.log


async def status(server: RunningServer, path: str) -> int:
    async with httpx.AsyncClient(timeout=2.0) as http:
        return (await http.get(f"{server.http}{path}")).status_code


async def until_status(server: RunningServer, path: str, code: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (seen := await status(server, path)) != code:
        assert time.monotonic() < deadline, f"{path} still {seen} after {seconds} s, not {code}"
        await asyncio.sleep(0.1)


async def fails_promptly_with_100(client: ProtocolClient, **command: object) -> None:
    """``command`` is answered with error 100, temporary, within ``PROMPT`` seconds."""
    began = time.monotonic()
    reply = await client.command(**command)
    took = time.monotonic() - began
    assert reply.get("error", {}).get("code") == 100, reply
    assert reply["error"].get("temporary") is True, reply
    assert took < PROMPT, f"{next(iter(command))} took {took:.1f} s to fail"


async def still_served(client: ProtocolClient) -> None:
    """The connection is open and its commands are answered (an RPC nobody registered)."""
    reply = await client.command(rpc={"method": "nothing", "data": {}})
    assert reply.get("error", {}).get("code") == 104, reply
    assert client.ws.close_code is None


async def test_a_cut_engine_fails_commands_fast_and_the_node_recovers(
    proxy: Proxy, server: RunningServer
) -> None:
    channel = f"feed:{uuid.uuid4().hex[:12]}"
    async with protocol_client(server.ws) as subscriber, protocol_client(server.ws) as publisher:
        position = await subscriber.subscribe(channel)
        await publisher.call("publish", channel=channel, data={"n": 1})
        before = await subscriber.push(channel, "pub")
        assert before["data"] == {"n": 1}

        await proxy.cut()
        await fails_promptly_with_100(publisher, publish={"channel": channel, "data": {"n": 2}})
        await fails_promptly_with_100(publisher, history={"channel": channel, "limit": -1})
        await still_served(publisher)
        await until_status(server, "/readyz", 503, NOT_READY_WITHIN)
        assert await status(server, "/healthz") == 200

        await proxy.start()  # the same port: the node finds Redis again by itself
        await until_status(server, "/readyz", 200, READY_AGAIN_WITHIN)
        unsubscribe = await subscriber.push(channel, "unsubscribe", READY_AGAIN_WITHIN)
        assert unsubscribe == {"code": 2500, "reason": "insufficient state"}
        await publisher.call("publish", channel=channel, data={"n": 3})
        again = await subscriber.subscribe(
            channel, recover=True, offset=before["offset"], epoch=position["epoch"]
        )
        assert (again["was_recovering"], again["recovered"]) == (True, True)
        # The publish refused during the outage is not there: it was never made.
        assert [p["data"] for p in again["publications"]] == [{"n": 3}]


@pytest.mark.parametrize(
    ("method", "namespace", "params"),
    [
        pytest.param("publish", "", {"data": {"n": 2}}, id="publish-without-history"),
        pytest.param("publish", "feed:", {"data": {"n": 2}}, id="publish-into-history"),
        pytest.param("history", "feed:", {"limit": -1}, id="history-read"),
    ],
)  # fmt: skip
async def test_a_frozen_engine_fails_commands_within_seconds(
    proxy: Proxy, server: RunningServer, method: str, namespace: str, params: dict[str, object]
) -> None:
    channel = f"{namespace}{uuid.uuid4().hex[:12]}"
    async with protocol_client(server.ws) as client:
        await client.subscribe(channel)
        await client.call("publish", channel=channel, data={"n": 1})
        proxy.frozen = True  # packets vanish: nothing is refused, nothing answers
        await fails_promptly_with_100(client, **{method: {"channel": channel, **params}})
        await still_served(client)
