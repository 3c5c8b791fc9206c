"""Two ``roomcast serve`` processes on one engine act as one server: what a client publishes
on one node reaches the subscribers of the other, for the seed chats and for Centrifuge clients;
presence counts the clients of both; a client that subscribed on one node recovers what it
missed on the other. (``--workers 2``: ``test_workers.py``.)

Each test module run uses the machine's shared engine servers (the ``engine_url`` fixture of
``tests/e2e/conftest.py``) under a prefix of its own, skipped when one is unreachable except
with ``CI=true``, where that fails them. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.protocol_client import protocol_client
from tests.support.seed_chat import chat_across
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import connect, recv_until

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


async def test_chat_clients_on_two_nodes_see_each_other(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    async with connect(f"{node_a.ws}/ws/chat") as on_a, connect(f"{node_b.ws}/ws/chat") as on_b:
        await chat_across(on_a, on_b, WAIT)


async def test_numbered_chat_members_on_two_nodes_see_each_other(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    async with connect(f"{node_a.ws}/ws/1") as one, connect(f"{node_b.ws}/ws/2") as two:
        sent = 0

        async def say_from_one() -> None:  # again, until both subscriptions are in place
            nonlocal sent
            sent += 1
            await one.send(f"hi {sent}")

        await say_from_one()
        await recv_until(
            two, lambda m: str(m).startswith("Client #1 says: hi "), WAIT, say_from_one
        )
        await two.send("hello")
        await recv_until(one, lambda m: m == "Client #2 says: hello", WAIT)


async def test_centrifuge_publication_crosses_nodes(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    async with protocol_client(node_a.ws) as publisher, protocol_client(node_b.ws) as subscriber:
        await subscriber.subscribe("news")
        data = {"headline": "crossed", "n": 1}
        await publisher.call("publish", channel="news", data=data)
        assert (await subscriber.push("news", "pub", WAIT))["data"] == data


async def test_presence_counts_the_clients_of_both_nodes(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    channel = "room:presence"
    async with protocol_client(node_a.ws) as on_a, protocol_client(node_b.ws) as on_b:
        for client in (on_a, on_b):
            await client.subscribe(channel)
        # A session adds its presence entry just after its subscribe reply: poll a moment.
        deadline = time.monotonic() + WAIT
        for client in (on_a, on_b):
            while True:
                stats = await client.call("presence_stats", channel=channel)
                if stats.get("num_clients") == 2:
                    break
                assert time.monotonic() < deadline, f"presence never counted both: {stats}"
                await asyncio.sleep(0.05)
            assert stats == {"num_clients": 2, "num_users": 1}
            presence = await client.call("presence", channel=channel)
            assert sorted(presence["presence"]) == sorted([on_a.client, on_b.client])


async def test_a_client_recovers_on_the_other_node(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    channel = "room:recovery"
    async with protocol_client(node_b.ws) as on_b:
        position = await on_b.subscribe(channel)
    assert position["recoverable"] is True
    since = {"offset": position.get("offset", 0), "epoch": position["epoch"]}

    async with protocol_client(node_a.ws) as on_a:
        for n in range(5):
            await on_a.call("publish", channel=channel, data={"n": n})
        reply = await on_a.subscribe(channel, recover=True, **since)
    assert reply["recovered"] is True
    assert [pub["data"] for pub in reply["publications"]] == [{"n": n} for n in range(5)]
    offsets = [pub["offset"] for pub in reply["publications"]]
    assert offsets == list(range(since["offset"] + 1, since["offset"] + 6))
