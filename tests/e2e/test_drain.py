"""The graceful drain of ``roomcast serve``, end to end, with real processes and real SDKs.

200 centrifuge-python clients reach node A through a balancer that routes new connections to
the first node whose ``/readyz`` says ready; B shares A's Redis. On SIGTERM, A's ``/readyz``
turns 503 within 100 ms, a new WebSocket handshake to A gets HTTP 503, every client is closed
with 3001 "shutdown" in batches spread over ``shutdown.timeout``, reconnects through the
balancer to B and recovers there every publication it missed, none twice. A second signal
stops at once; ``--workers 2`` drains both workers. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from centrifuge import Client, ConnectingContext  # type: ignore[import-untyped]
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.balancer import Balancer, balancer
from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.python_sdk import ClientEvents, Feed
from tests.support.server import RunningServer, start_server
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.tokens import SECRET, connection_token

pytestmark = pytest.mark.timeout(180)

KEY = "drain-key"
CLIENTS = 200
DRAIN_SECONDS = 4.0
SHUTDOWN = (3001, "shutdown")
FEED = {
    "name": "feed",
    "history_size": 1000,
    "history_ttl": "300s",
    "force_recovery": True,
    "allow_subscribe_for_client": True,
}
WAIT = 30.0
"""The longest any one phase may take on a loaded 2-core machine."""


def node_env(timeout: float) -> dict[str, str]:
    return {
        "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([FEED]),
        "ROOMCAST_SHUTDOWN__TIMEOUT": str(timeout),
    }


@pytest.fixture
def redis_url() -> Iterator[str]:
    redis = SHARED_ENGINES["redis"]
    redis.require("the drain tests")
    prefix = unique_prefix()
    yield redis.url(prefix)
    redis.cleanup(prefix)


def serve(tmp_path: Path, name: str, engine: str, timeout: float, *args: str) -> RunningServer:
    directory = tmp_path / name
    directory.mkdir()
    return start_server(
        "--engine", engine, "--api-key", KEY, "--no-examples", *args,
        env=node_env(timeout), cwd=directory,
    )  # fmt: skip


async def until(condition: Any, what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {seconds}s"
        await asyncio.sleep(0.02)


async def api(server: RunningServer, method: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as http:
        reply = await http.post(
            f"{server.http}/api/{method}", json=params, headers={"X-API-Key": KEY}
        )
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert "error" not in body, body
    return body["result"]  # type: ignore[no-any-return]


async def clients_on(server: RunningServer) -> int:
    info = await api(server, "info")
    return sum(node["num_clients"] for node in info["nodes"])


class TimedEvents(ClientEvents):  # type: ignore[misc]
    """A client's events, with when each ``connecting`` came (monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.connecting_at: list[float] = []

    async def on_connecting(self, ctx: ConnectingContext) -> None:
        self.connecting_at.append(time.monotonic())
        await super().on_connecting(ctx)


class SdkClient:
    """One centrifuge-python client through the balancer, subscribed to ``channel``."""

    def __init__(self, front: Balancer, user: str, channel: str) -> None:
        self.events = TimedEvents()
        self.feed = Feed()
        self.client = Client(
            front.url("ws", "/connection/websocket"),
            events=self.events,
            token=connection_token(user),
            proxy=None,
            timeout=10.0,
            min_reconnect_delay=0.05,
            max_reconnect_delay=0.5,
        )
        self.subscription = self.client.new_subscription(channel, events=self.feed)

    async def start(self) -> None:
        await asyncio.wait_for(self.client.connect(), WAIT)
        await asyncio.wait_for(self.subscription.subscribe(), WAIT)

    async def stop(self) -> None:
        with suppress(Exception):
            await asyncio.wait_for(self.client.disconnect(), 10)


@asynccontextmanager
async def sdk_clients(front: Balancer, channel: str, count: int) -> AsyncIterator[list[SdkClient]]:
    clients = [SdkClient(front, f"user{n}", channel) for n in range(count)]
    try:
        for start in range(0, count, 25):  # 25 handshakes at a time: the machine has 2 cores
            await asyncio.gather(*(c.start() for c in clients[start : start + 25]))
        await until(
            lambda: all(len(c.feed.subscribed) == 1 for c in clients), "every client subscribed"
        )
        yield clients
    finally:
        await asyncio.gather(*(c.stop() for c in clients))


class Publisher:
    """Publishes ``{"seq": n}`` into a channel through one node's API, n = 1, 2, ..., every
    20 ms until stopped."""

    def __init__(self, server: RunningServer, channel: str) -> None:
        self.server = server
        self.channel = channel
        self.last = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.http, timeout=10) as http:
            while True:
                reply = await http.post(
                    "/api/publish",
                    json={"channel": self.channel, "data": {"seq": self.last + 1}},
                    headers={"X-API-Key": KEY},
                )
                assert "error" not in reply.json(), reply.text
                self.last += 1
                await asyncio.sleep(0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        assert self._task is not None
        self._task.cancel()
        with suppress(asyncio.CancelledError):
            await self._task
        return self.last


async def readyz_status(server: RunningServer, http: httpx.AsyncClient) -> int:
    return (await http.get(f"{server.http}/readyz")).status_code


async def handshake_status(server: RunningServer) -> int:
    """The HTTP status a new WebSocket handshake to ``server`` is answered with (101 if it
    is accepted)."""
    try:
        async with ws_connect(f"{server.ws}/connection/websocket", open_timeout=10):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


async def test_sigterm_drains_200_clients_to_the_other_node_where_they_recover(
    tmp_path: Path, redis_url: str
) -> None:
    channel = "feed:drain"
    a = serve(tmp_path, "a", redis_url, DRAIN_SECONDS)
    b = serve(tmp_path, "b", redis_url, DRAIN_SECONDS)
    publisher = Publisher(b, channel)
    try:
        async with (
            balancer([a, b]) as front,
            sdk_clients(front, channel, CLIENTS) as clients,
            httpx.AsyncClient(timeout=5) as http,
        ):
            assert (await clients_on(a), await clients_on(b)) == (CLIENTS, 0)
            publisher.start()
            await until(lambda: all(len(c.feed.publications) >= 3 for c in clients), "traffic")
            assert await readyz_status(a, http) == 200  # the keep-alive connection is warm

            signalled = time.monotonic()
            a.process.send_signal(signal.SIGTERM)
            while await readyz_status(a, http) != 503:
                assert time.monotonic() - signalled < 5, "/readyz never turned 503"
            unready_after = time.monotonic() - signalled
            assert unready_after < 0.1, f"/readyz turned 503 after {unready_after * 1000:.0f} ms"
            assert await handshake_status(a) == 503  # new connections are refused
            assert (await http.get(f"{a.http}/healthz")).status_code == 200  # alive meanwhile

            await until(
                lambda: all(len(c.events.connecting) >= 2 for c in clients),
                "shutdown close for every client",
            )
            closes = [(c.events.connecting[1].code, c.events.connecting[1].reason) for c in clients]
            assert set(closes) == {SHUTDOWN}
            at = sorted(c.events.connecting_at[1] - signalled for c in clients)
            assert at[-1] < DRAIN_SECONDS, f"the last client was closed after {at[-1]:.2f}s"
            # In batches over the window (80% of the timeout), not all at once.
            assert at[-1] - at[0] > DRAIN_SECONDS * 0.5, f"closes spanned {at[-1] - at[0]:.2f}s"
            assert sum(t < DRAIN_SECONDS * 0.4 for t in at) < CLIENTS * 0.7

            await until(
                lambda: all(len(c.feed.subscribed) >= 2 for c in clients),
                "every client resubscribed",
            )
            resubscribed = [c.feed.subscribed[1] for c in clients]
            assert all(s.was_recovering and s.recovered for s in resubscribed), resubscribed
            assert await asyncio.to_thread(a.process.wait, WAIT) == -signal.SIGTERM
            assert await clients_on(b) == CLIENTS  # every one of them is on B now

            last = await publisher.stop()
            await until(
                lambda: all(c.feed.seqs and c.feed.seqs[-1] == last for c in clients),
                f"publication {last} everywhere",
            )
            for c in clients:
                first = c.feed.seqs[0]
                assert c.feed.seqs == list(range(first, last + 1)), c.feed
    finally:
        if not publisher._task or not publisher._task.done():
            with suppress(AssertionError):
                await publisher.stop()
        a.stop(signal.SIGKILL)
        b.stop()
    for server in (a, b):
        assert "Traceback" not in server.log, server.log
    assert "draining: 200 clients to close over 4.0 s" in a.log


@asynccontextmanager
async def raw_clients(server: RunningServer, count: int) -> AsyncIterator[list[ProtocolClient]]:
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                protocol_client(server.ws, token=connection_token(f"u{n}"), user=f"u{n}")
            )
            for n in range(count)
        ]
        yield clients


async def closes_of(clients: list[ProtocolClient], seconds: float) -> list[tuple[int, str]]:
    return list(await asyncio.gather(*(c.closed_with(seconds) for c in clients)))


async def test_a_second_signal_closes_everyone_left_at_once_and_stops(tmp_path: Path) -> None:
    server = serve(tmp_path, "a", "memory://", 30.0)
    try:
        async with raw_clients(server, 50) as clients:
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)  # a couple of batches of the 30 s drain go out
            again = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            assert set(await closes_of(clients, 5.0)) == {SHUTDOWN}
            assert time.monotonic() - again < 2.0
        exit_code = await asyncio.to_thread(server.process.wait, 10)
        assert exit_code == -signal.SIGTERM  # the first signal's, re-raised as uvicorn does
        assert time.monotonic() - again < 5.0
    finally:
        server.stop(signal.SIGKILL)
    assert "Traceback" not in server.log, server.log


def worker_pids(server: RunningServer) -> list[int]:
    return [int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", server.log)]


async def test_workers_ignore_sigint_and_drain_when_the_supervisor_is_signalled(
    tmp_path: Path, redis_url: str
) -> None:
    server = serve(tmp_path, "w", redis_url, 2.0, "--workers", "2")
    try:
        await until(lambda: len(worker_pids(server)) == 2, "two workers")
        fresh = httpx.Limits(max_keepalive_connections=0)  # each probe may reach either worker
        async with (
            raw_clients(server, 40) as clients,
            httpx.AsyncClient(timeout=5, limits=fresh) as http,
        ):
            # A terminal's Ctrl-C reaches every worker too; a worker leaves it to the
            # supervisor, which passes it on as SIGTERM.
            for pid in worker_pids(server):
                os.kill(pid, signal.SIGINT)
            await asyncio.sleep(0.5)
            assert all([await ready(server, http) for _ in range(10)])
            assert "draining" not in server.log
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGINT)
            while await readyz_status(server, http) != 503:
                assert time.monotonic() - signalled < 5, "/readyz never turned 503"
            assert time.monotonic() - signalled < 0.5
            assert set(await closes_of(clients, WAIT)) == {SHUTDOWN}
            assert time.monotonic() - signalled < 2.0 + 0.5
        assert await asyncio.to_thread(server.process.wait, WAIT) is not None
    finally:
        server.stop(signal.SIGKILL)
    assert server.log.count("draining: ") == 2, server.log  # each worker drained its own
    assert "Traceback" not in server.log, server.log


async def ready(server: RunningServer, http: httpx.AsyncClient) -> bool:
    return await readyz_status(server, http) == 200


async def test_a_second_signal_to_the_supervisor_stops_the_workers_at_once(
    tmp_path: Path, redis_url: str
) -> None:
    server = serve(tmp_path, "w", redis_url, 30.0, "--workers", "2")
    try:
        await until(lambda: len(worker_pids(server)) == 2, "two workers")
        async with raw_clients(server, 40) as clients:
            server.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(1.0)
            again = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            assert set(await closes_of(clients, 5.0)) == {SHUTDOWN}
        await asyncio.to_thread(server.process.wait, 10)
        assert time.monotonic() - again < 6.0
    finally:
        server.stop(signal.SIGKILL)
    assert "Traceback" not in server.log, server.log
