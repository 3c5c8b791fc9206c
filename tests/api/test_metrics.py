"""``GET /metrics`` on a real server reflects its clients, subscriptions and deliveries."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.api import protocol_client
from tests.support.server import RunningServer, start_server

KEY = "k"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    server = start_server("--api-key", KEY, "--insecure", "--no-examples")
    yield server
    server.stop()


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
