"""The server API over a namespace that keeps history and presence, driven by ``cent``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from cent import (  # type: ignore[import-untyped]
    AsyncClient,
    CentApiResponseError,
    HistoryRemoveRequest,
    HistoryRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    StreamPosition,
)

from tests.api import ProtocolClient, protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import TIMEOUT

KEY = "k"
FEED = {
    "name": "feed",
    "history_size": 5,
    "history_ttl": "60s",
    "presence": True,
    "allow_subscribe_for_client": True,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("history")
    env = {
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([FEED]),
        "ROOMCAST_ENGINE__HISTORY": f"sqlite:///{data}/history.sqlite3",
    }
    server = start_server("--api-key", KEY, "--insecure", "--no-examples", env=env)
    yield server
    server.stop()
    assert "Traceback" not in server.log


@pytest.fixture
async def cent(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{server.http}/api", KEY, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
async def ws(server: RunningServer) -> AsyncIterator[ProtocolClient]:
    async with protocol_client(server.ws) as client:
        yield client


async def test_publish_reports_offsets_and_history_pages(cent: AsyncClient) -> None:
    results = [
        await cent.publish(PublishRequest(channel="feed:a", data={"n": n})) for n in range(7)
    ]
    assert [r.offset for r in results] == [1, 2, 3, 4, 5, 6, 7]
    epoch = results[0].epoch
    assert epoch
    assert {r.epoch for r in results} == {epoch}

    kept = await cent.history(HistoryRequest(channel="feed:a", limit=-1))
    assert [p.offset for p in kept.publications] == [3, 4, 5, 6, 7]  # history_size 5
    assert (kept.offset, kept.epoch) == (7, epoch)
    assert kept.publications[0].data == {"n": 2}

    since = StreamPosition(offset=4, epoch=epoch)
    page = await cent.history(HistoryRequest(channel="feed:a", limit=2, since=since))
    assert [p.offset for p in page.publications] == [5, 6]
    newest = await cent.history(HistoryRequest(channel="feed:a", limit=2, reverse=True))
    assert [p.offset for p in newest.publications] == [7, 6]
    position = await cent.history(HistoryRequest(channel="feed:a"))
    assert (position.publications, position.offset) == ([], 7)

    too_old = StreamPosition(offset=1, epoch=epoch)
    with pytest.raises(CentApiResponseError) as caught:
        await cent.history(HistoryRequest(channel="feed:a", limit=10, since=too_old))
    assert caught.value.code == 112


async def test_history_remove_starts_a_new_epoch(cent: AsyncClient) -> None:
    first = await cent.publish(PublishRequest(channel="feed:b", data=1))
    await cent.history_remove(HistoryRemoveRequest(channel="feed:b"))
    emptied = await cent.history(HistoryRequest(channel="feed:b", limit=-1))
    assert emptied.publications == []
    again = await cent.publish(PublishRequest(channel="feed:b", data=2))
    assert again.offset == 1
    assert again.epoch != first.epoch
    stale = StreamPosition(offset=first.offset, epoch=first.epoch)
    with pytest.raises(CentApiResponseError) as caught:
        await cent.history(HistoryRequest(channel="feed:b", limit=10, since=stale))
    assert caught.value.code == 112


async def test_idempotent_publish_happens_once(cent: AsyncClient, ws: ProtocolClient) -> None:
    await ws.subscribe("feed:c")
    request = PublishRequest(channel="feed:c", data={"order": 1}, idempotency_key="order-1")
    first = await cent.publish(request)
    second = await cent.publish(request)
    assert (second.offset, second.epoch) == (first.offset, first.epoch)
    other = await cent.publish(PublishRequest(channel="feed:c", data={"order": 2}))
    assert other.offset == first.offset + 1
    pubs = [(await ws.push("feed:c", "pub"))["data"] for _ in range(2)]
    assert pubs == [{"order": 1}, {"order": 2}]


async def test_presence_through_the_api(cent: AsyncClient, ws: ProtocolClient) -> None:
    await ws.subscribe("feed:d")
    presence = await cent.presence(PresenceRequest(channel="feed:d"))
    assert list(presence.presence) == [ws.client]
    stats = await cent.presence_stats(PresenceStatsRequest(channel="feed:d"))
    assert (stats.num_clients, stats.num_users) == (1, 1)
