"""``roomcast serve --workers 2`` on a shared engine: two worker processes take connections
behind one port, and they behave as one server. A publication made through a connection that
one worker serves reaches a subscriber that the other serves, for Centrifuge clients and for
the seed chat.

Which worker serves a connection is read from ``/proc`` (``tests.support.process_tree``): the
worker holding the server's end of its socket. The test opens connections until it has one
on each worker, within a bounded number of attempts and time (a worker that is still starting
takes none). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.process_tree import children, serving_process
from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.seed_chat import chat_across
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import connect

WAIT = 10.0
API_KEY = "workers-key"
SPREAD_WITHIN = 30.0
"""How long the test may open connections to find both workers (one may still be starting)."""
ATTEMPTS = 200

_Client = TypeVar("_Client")


@pytest.fixture(scope="module")
def two_workers(
    engine_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    cwd = tmp_path_factory.mktemp("roomcast-workers")
    server = start_server(
        "--workers", "2", "--engine", engine_url, "--insecure", "--api-key", API_KEY, cwd=cwd
    )
    try:
        yield server
    finally:
        assert server.stop() in (0, -2, 130), server.log
    assert "Traceback" not in server.log, server.log


@asynccontextmanager
async def one_per_worker(
    server: RunningServer,
    open_client: Callable[[], AbstractAsyncContextManager[_Client]],
    local_port: Callable[[_Client], int],
) -> AsyncIterator[tuple[_Client, _Client]]:
    """Two clients that two distinct worker processes of ``server`` serve, open until the
    block ends: opens clients one by one, keeping the first of each worker, closing the rest."""
    deadline = time.monotonic() + SPREAD_WITHIN
    async with AsyncExitStack() as kept:
        by_worker: dict[int, _Client] = {}
        for _ in range(ATTEMPTS):
            if len(by_worker) == 2 or time.monotonic() > deadline:
                break
            async with AsyncExitStack() as attempt:
                client = await attempt.enter_async_context(open_client())
                workers = children(server.process.pid)
                worker = serving_process(workers, server.port, local_port(client))
                assert worker is not None, f"no child of {server.process.pid} serves it"
                if worker not in by_worker:
                    by_worker[worker] = client
                    kept.push_async_exit(attempt.pop_all())
            await asyncio.sleep(0.02)
        assert len(by_worker) == 2, f"every connection went to worker(s) {sorted(by_worker)}"
        assert server.process.pid not in by_worker
        first, second = by_worker.values()
        yield first, second


def _port(ws: ClientConnection) -> int:
    port: int = ws.local_address[1]
    return port


async def test_a_publication_reaches_a_subscriber_of_the_other_worker(
    two_workers: RunningServer,
) -> None:
    def open_client() -> AbstractAsyncContextManager[ProtocolClient]:
        return protocol_client(two_workers.ws)

    async with one_per_worker(two_workers, open_client, lambda c: _port(c.ws)) as (one, other):
        # Each way: a channel with its only subscriber on one worker, published to on the other.
        await one.subscribe("news-one")
        await other.subscribe("news-other")
        await other.call("publish", channel="news-one", data={"from": "other"})
        assert (await one.push("news-one", "pub", WAIT))["data"] == {"from": "other"}
        await one.call("publish", channel="news-other", data={"from": "one"})
        assert (await other.push("news-other", "pub", WAIT))["data"] == {"from": "one"}


async def test_seed_chat_members_on_two_workers_hear_each_other(
    two_workers: RunningServer,
) -> None:
    def open_client() -> AbstractAsyncContextManager[ClientConnection]:
        return connect(f"{two_workers.ws}/ws/chat")

    async with one_per_worker(two_workers, open_client, _port) as (one, other):
        await chat_across(one, other, WAIT)


async def test_each_worker_is_a_node_and_the_api_acts_on_the_other_workers_clients(
    two_workers: RunningServer,
) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=WAIT) as http:

        async def api(method: str, body: dict[str, object]) -> dict[str, Any]:
            reply: dict[str, Any] = (
                await http.post(f"{two_workers.http}/api/{method}", json=body)
            ).json()
            return reply

        deadline = time.monotonic() + WAIT
        while len((await api("info", {}))["result"]["nodes"]) != 2:
            assert time.monotonic() < deadline, "the two workers never saw each other"
            await asyncio.sleep(0.05)
        nodes = (await api("info", {}))["result"]["nodes"]
        assert len({node["uid"] for node in nodes}) == 2

        def open_client() -> AbstractAsyncContextManager[ProtocolClient]:
            return protocol_client(two_workers.ws)

        async with one_per_worker(two_workers, open_client, lambda c: _port(c.ws)) as (one, other):
            # Whichever worker takes each call, both connections are closed.
            for client in (one, other):
                await api("disconnect", {"user": "", "client": client.client})
            assert (await one.closed_with())[0] == 3503
            assert (await other.closed_with())[0] == 3503
