"""``roomcast serve --workers 2`` on a shared engine: two worker processes take connections
behind one port, and they behave as one server. A publication made through a connection that
one worker serves reaches a subscriber that the other serves, for Centrifuge clients and for
the seed chat.

Which worker serves a connection is read from ``/proc`` (``tests.support.worker_spread``): the
worker holding the server's end of its socket. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.seed_chat import chat_across
from tests.support.server import RunningServer, start_server
from tests.support.worker_spread import local_port, one_per_worker
from tests.support.wsclient import connect

WAIT = 10.0
API_KEY = "workers-key"


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


async def test_a_publication_reaches_a_subscriber_of_the_other_worker(
    two_workers: RunningServer,
) -> None:
    def open_client() -> AbstractAsyncContextManager[ProtocolClient]:
        return protocol_client(two_workers.ws)

    async with one_per_worker(two_workers, open_client, lambda c: local_port(c.ws)) as (one, other):
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

    async with one_per_worker(two_workers, open_client, local_port) as (one, other):
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

        async with one_per_worker(two_workers, open_client, lambda c: local_port(c.ws)) as (
            one,
            other,
        ):
            # Whichever worker takes each call, both connections are closed.
            for client in (one, other):
                await api("disconnect", {"user": "", "client": client.client})
            assert (await one.closed_with())[0] == 3503
            assert (await other.closed_with())[0] == 3503
