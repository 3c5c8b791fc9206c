"""Two ``roomcast serve`` processes on one engine act as one server: what a client publishes
on one node reaches the subscribers of the other, for the seed chat and for Centrifuge clients;
presence counts the clients of both; a client that subscribed on one node recovers what it
missed on the other; and ``--workers 2`` serves.

Each test module run uses the machine's shared engine servers
(``tests.support.shared_engines``) under a prefix of its own, skipped when one is unreachable
except with ``CI=true``, where that fails them. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.server import RunningServer, start_server
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.wsclient import connect, recv

WAIT = 10.0

NAMESPACES = [
    {
        "name": "room",
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
        "presence": True,
        "history_size": 100,
        "history_ttl": "300s",
        "force_recovery": True,
    }
]


@pytest.fixture(scope="module", params=sorted(SHARED_ENGINES))
def engine_url(request: pytest.FixtureRequest) -> Iterator[str]:
    engine = SHARED_ENGINES[request.param]
    engine.require(f"the cross-node tests on {engine.name}")
    prefix = unique_prefix()
    yield engine.url(prefix)
    engine.cleanup(prefix)


@pytest.fixture(scope="module")
def nodes(
    engine_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    started: list[RunningServer] = []
    env = {"ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES)}
    try:
        for name in ("a", "b"):
            cwd: Path = tmp_path_factory.mktemp(f"roomcast-node-{name}")
            started.append(start_server("--engine", engine_url, "--insecure", env=env, cwd=cwd))
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


async def _until_seen(
    ws: ClientConnection, wanted: Any, deadline: float, nudge: Any = None
) -> None:
    """Read ``ws`` until ``wanted(message)``; call ``nudge()`` between quiet reads."""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the message never arrived"
        try:
            message = await recv(ws, min(0.2, remaining))
        except TimeoutError:
            if nudge is not None:
                await nudge()
            continue
        if wanted(message):
            return


async def test_chat_clients_on_two_nodes_see_each_other(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    deadline = time.monotonic() + WAIT
    async with connect(f"{node_a.ws}/ws/chat") as on_a, connect(f"{node_b.ws}/ws/chat") as on_b:
        sent = 0

        async def say_from_a() -> None:  # until both subscriptions are in place
            nonlocal sent
            sent += 1
            await on_a.send(f"from A {sent}")

        await say_from_a()
        await _until_seen(
            on_b, lambda m: str(m).startswith("Client says: from A "), deadline, say_from_a
        )
        await on_b.send("from B")
        await _until_seen(on_a, lambda m: m == "Client says: from B", deadline)


def _replies(message: str | bytes) -> list[dict[str, Any]]:
    text = message.decode() if isinstance(message, bytes) else message
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def _reply(ws: ClientConnection, command_id: int, deadline: float) -> dict[str, Any]:
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no reply to command {command_id}"
        for reply in _replies(await recv(ws, remaining)):
            if reply.get("id") == command_id:
                assert "error" not in reply, reply
                return reply


async def test_centrifuge_publication_crosses_nodes(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    deadline = time.monotonic() + WAIT
    url_a = f"{node_a.ws}/connection/websocket"
    url_b = f"{node_b.ws}/connection/websocket"
    async with connect(url_a) as publisher, connect(url_b) as subscriber:
        await subscriber.send(json.dumps({"id": 1, "connect": {}}))
        await _reply(subscriber, 1, deadline)
        await subscriber.send(json.dumps({"id": 2, "subscribe": {"channel": "news"}}))
        await _reply(subscriber, 2, deadline)

        await publisher.send(json.dumps({"id": 1, "connect": {}}))
        await _reply(publisher, 1, deadline)
        data = {"headline": "crossed", "n": 1}
        await publisher.send(json.dumps({"id": 3, "publish": {"channel": "news", "data": data}}))
        await _reply(publisher, 3, deadline)

        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the publication never reached node B"
            pushes = [r["push"] for r in _replies(await recv(subscriber, remaining)) if "push" in r]
            pubs = [p for p in pushes if p.get("channel") == "news" and "pub" in p]
            if pubs:
                assert pubs[0]["pub"]["data"] == data
                return


async def test_serve_with_two_workers(engine_url: str, tmp_path: Path) -> None:
    server = start_server("--workers", "2", "--engine", engine_url, "--insecure", cwd=tmp_path)
    try:
        for _ in range(4):  # whichever worker takes each connection
            async with connect(f"{server.ws}/ws/echo") as ws:
                await ws.send("hello")
                assert await recv(ws) == "Echo: hello"
    finally:
        assert server.stop() in (0, -2, 130), server.log


async def _command(ws: ClientConnection, command_id: int, body: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps({"id": command_id, **body}))
    return await _reply(ws, command_id, time.monotonic() + WAIT)


async def test_presence_counts_the_clients_of_both_nodes(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    channel = "room:presence"
    async with (
        connect(f"{node_a.ws}/connection/websocket") as on_a,
        connect(f"{node_b.ws}/connection/websocket") as on_b,
    ):
        clients = []
        for ws in (on_a, on_b):
            connected = await _command(ws, 1, {"connect": {}})
            clients.append(connected["connect"]["client"])
            await _command(ws, 2, {"subscribe": {"channel": channel}})
        # A session adds its presence entry just after its subscribe reply: poll a moment.
        deadline = time.monotonic() + WAIT
        command_id = 3
        for ws in (on_a, on_b):
            while True:
                command_id += 1
                stats = await _command(ws, command_id, {"presence_stats": {"channel": channel}})
                if stats["presence_stats"].get("num_clients") == 2:
                    break
                assert time.monotonic() < deadline, f"presence never counted both: {stats}"
                await asyncio.sleep(0.05)
            assert stats["presence_stats"] == {"num_clients": 2, "num_users": 1}
            command_id += 1
            presence = await _command(ws, command_id, {"presence": {"channel": channel}})
            assert sorted(presence["presence"]["presence"]) == sorted(clients)


async def test_a_client_recovers_on_the_other_node(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    channel = "room:recovery"
    async with connect(f"{node_b.ws}/connection/websocket") as on_b:
        await _command(on_b, 1, {"connect": {}})
        subscribed = await _command(on_b, 2, {"subscribe": {"channel": channel}})
    position = subscribed["subscribe"]
    assert position["recoverable"] is True
    since = {"offset": position.get("offset", 0), "epoch": position["epoch"]}

    async with connect(f"{node_a.ws}/connection/websocket") as on_a:
        await _command(on_a, 1, {"connect": {}})
        for n in range(5):
            await _command(on_a, 10 + n, {"publish": {"channel": channel, "data": {"n": n}}})
        recovered = await _command(
            on_a, 20, {"subscribe": {"channel": channel, "recover": True, **since}}
        )
    reply = recovered["subscribe"]
    assert reply["recovered"] is True
    assert [pub["data"] for pub in reply["publications"]] == [{"n": n} for n in range(5)]
    offsets = [pub["offset"] for pub in reply["publications"]]
    assert offsets == list(range(since["offset"] + 1, since["offset"] + 6))
