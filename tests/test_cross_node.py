"""Two ``roomcast serve`` processes on one Redis act as one server: what a client publishes on
one node reaches the subscribers of the other, for the seed chat and for Centrifuge clients;
and ``--workers 2`` serves with the Redis broker.

These tests need the Redis at 127.0.0.1:6379 and are skipped without it, except with
``CI=true``, where that fails them. Each run uses its own key prefix. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.server import RunningServer, start_server
from tests.wsclient import connect, recv

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
WAIT = 10.0


def _require_redis() -> None:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1.0):
            return
    except OSError as exc:
        reason = f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable ({exc})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it for the cross-node tests")
    pytest.skip(f"{reason}; start one to run the cross-node tests")


@pytest.fixture(scope="module")
def engine_url() -> Iterator[str]:
    _require_redis()
    prefix = f"roomcast-test:{uuid.uuid4().hex[:12]}:"
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0?prefix={prefix}"
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def nodes(
    engine_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    started: list[RunningServer] = []
    try:
        for name in ("a", "b"):
            cwd: Path = tmp_path_factory.mktemp(f"roomcast-node-{name}")
            started.append(start_server("--engine", engine_url, "--insecure", cwd=cwd))
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


async def test_serve_with_two_workers_on_redis(engine_url: str, tmp_path: Path) -> None:
    server = start_server("--workers", "2", "--engine", engine_url, "--insecure", cwd=tmp_path)
    try:
        for _ in range(4):  # whichever worker takes each connection
            async with connect(f"{server.ws}/ws/echo") as ws:
                await ws.send("hello")
                assert await recv(ws) == "Echo: hello"
    finally:
        assert server.stop() in (0, -2, 130), server.log
