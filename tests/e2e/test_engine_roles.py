"""``--engine URL`` puts the broker, history and presence on one engine, and ``engine.history``
and ``engine.presence`` each take one role elsewhere, as ``README.md`` says. Two
``roomcast serve`` nodes share the machine's Redis for ``--engine`` but keep history in their
own SQLite file and presence in their own memory: a publication crosses nodes live, while each
node's history and presence hold only its own. Every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.wsclient import TIMEOUT

API_KEY = "k"
NAMESPACE = {
    "name": "room",
    "history_size": 10,
    "history_ttl": "300s",
    "presence": True,
    "allow_subscribe_for_client": True,
}


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningServer, RunningServer]]:
    redis = SHARED_ENGINES["redis"]
    redis.require("the engine role tests")
    prefix = unique_prefix()
    env = {
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE]),
        "ROOMCAST_ENGINE__HISTORY": "sqlite:///own-history.sqlite3",  # in each node's directory
        "ROOMCAST_ENGINE__PRESENCE": "memory://",
    }
    started: list[RunningServer] = []
    try:
        for name in ("a", "b"):
            cwd = tmp_path_factory.mktemp(f"roles-{name}")
            args = (
                "--no-examples",
                "--insecure",
                "--api-key",
                API_KEY,
                "--engine",
                redis.url(prefix),
            )
            started.append(start_server(*args, env=env, cwd=cwd))
            assert (cwd / "own-history.sqlite3").is_file()
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()
        redis.cleanup(prefix)
    for server in started:
        assert "Traceback" not in server.log, server.log


async def api(server: RunningServer, method: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=TIMEOUT) as http:
        reply = await http.post(f"{server.http}/api/{method}", json=params)
    body: dict[str, Any] = reply.json()
    assert "error" not in body, body
    result: dict[str, Any] = body["result"]
    return result


async def test_the_broker_is_shared_and_history_and_presence_are_each_nodes_own(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    channel = f"room:{uuid.uuid4().hex[:12]}"
    async with protocol_client(node_b.ws) as on_b:
        await on_b.subscribe(channel)
        await api(node_a, "publish", channel=channel, data={"from": "a"})
        assert (await on_b.push(channel, "pub"))["data"] == {"from": "a"}  # through Redis

        on_a = await api(node_a, "history", channel=channel, limit=-1)
        assert [p["data"] for p in on_a["publications"]] == [{"from": "a"}]
        assert (await api(node_b, "history", channel=channel, limit=-1)).get(
            "publications", []
        ) == []

        # The entry is added just after the subscribe reply: poll a moment.
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not (await api(node_b, "presence", channel=channel)).get("presence"):
            assert asyncio.get_running_loop().time() < deadline, "never present on node B"
            await asyncio.sleep(0.05)
        assert list((await api(node_b, "presence", channel=channel))["presence"]) == [on_b.client]
        assert (await api(node_a, "presence", channel=channel)).get("presence", {}) == {}
