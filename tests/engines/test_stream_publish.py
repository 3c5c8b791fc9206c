"""Publishing into a stream as one step of the engine (``Broker.publish_to_stream`` where
``Broker.adds_atomically``), for every engine in ``STREAM_ENGINES``: publications that several
processes publish concurrently into one channel reach every subscriber in offset order, each
once, and history holds the same stream.

Each "process" is a broker and store pair of its own, with its own connections. Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from roomcast.engines.base import Broker, HistoryOptions, HistoryStore
from roomcast.publication import ChannelEvent, ClientInfo, Publication

WAIT = 10.0
OPTIONS = HistoryOptions(size=1000, ttl=300.0)


class Process:
    """One node's broker and history store, and what its broker delivered."""

    def __init__(self, broker: Broker, store: HistoryStore) -> None:
        self.broker, self.store = broker, store
        self.received: list[Publication] = []

    def handle(self, channel: str, event: ChannelEvent) -> None:
        assert isinstance(event, Publication)
        self.received.append(event)


@pytest.fixture
async def processes(
    make_stream_engine: Callable[[], tuple[Broker, HistoryStore]],
) -> AsyncIterator[list[Process]]:
    made = [Process(*make_stream_engine()) for _ in range(3)]
    for process in made:
        await process.store.start()
        await process.broker.start(process.handle)
    yield made
    for process in made:
        await process.broker.close()
        await process.store.close()


async def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def test_the_broker_adds_atomically_with_its_own_store(processes: list[Process]) -> None:
    for process in processes:
        assert process.broker.adds_atomically(process.store)


async def test_concurrent_publishers_reach_every_subscriber_in_offset_order(
    processes: list[Process],
) -> None:
    for process in processes:
        await process.broker.subscribe("chat:room")
    per_publisher = 150

    async def publish_from(index: int, process: Process) -> list[Publication]:
        added = []
        for n in range(per_publisher):
            publication = Publication(data=f'"{index}-{n}"'.encode())
            added.append(
                await process.broker.publish_to_stream(
                    "chat:room", publication, OPTIONS, process.store
                )
            )
        return added

    results = await asyncio.gather(*(publish_from(i, p) for i, p in enumerate(processes)))
    total = per_publisher * len(processes)
    offsets = sorted(publication.offset for added in results for publication in added)
    assert offsets == list(range(1, total + 1))
    epochs = {publication.epoch for added in results for publication in added}
    assert len(epochs) == 1

    for process in processes:
        await _until(lambda p=process: len(p.received) >= total, "not every publication arrived")
        assert [pub.offset for pub in process.received] == list(range(1, total + 1))
        assert {pub.epoch for pub in process.received} == epochs

    page = await processes[0].store.read("chat:room")
    assert [pub.offset for pub in page.publications] == list(range(1, total + 1))
    by_offset = {pub.offset: pub.data for added in results for pub in added}
    assert [pub.data for pub in processes[1].received] == [
        by_offset[o] for o in range(1, total + 1)
    ]
    assert [pub.data for pub in page.publications] == [by_offset[o] for o in range(1, total + 1)]


async def test_a_stream_publication_carries_info_and_tags(processes: list[Process]) -> None:
    one, two = processes[0], processes[1]
    await two.broker.subscribe("chat:tagged")
    info = ClientInfo("user-é", "client-1", b'{"a":1}', b"")
    added = await one.broker.publish_to_stream(
        "chat:tagged", Publication(data=b'"x"', info=info, tags={"k": "v"}), OPTIONS, one.store
    )
    await _until(lambda: bool(two.received), "the publication never arrived")
    assert two.received == [added]
    assert added.info == info
    assert added.tags == {"k": "v"}
    assert added.offset == 1
