"""The publish guards (``PublishGuards``), run against every engine: a history store appends
once per idempotency key and drops a stale version; a broker publishes once per key into a
channel without history; and where a broker adds to its own engine's stream in one step, a
key retried through every process is delivered once and each process gets the first result.

Every wait is bounded. A delivery that must not happen is checked by a marker published
afterwards (one publisher's events arrive in order).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from roomcast.engines.base import (
    IDEMPOTENCY_TTL,
    Broker,
    HistoryOptions,
    HistoryStore,
    PublishGuards,
    Suppressed,
    SuppressReason,
)
from roomcast.engines.memory import MemoryBroker
from roomcast.publication import ChannelEvent, Publication, StreamPosition
from tests.engines.conftest import HISTORY_ENGINES, FakeClock, with_engine

WAIT = 10.0
KEEP = HistoryOptions(size=100, ttl=3600.0)


def pub(n: int) -> Publication:
    return Publication(data=b'{"n":%d}' % n)


def key(k: str) -> PublishGuards:
    return PublishGuards(idempotency_key=k)


def version(v: int, epoch: str = "") -> PublishGuards:
    return PublishGuards(version=v, version_epoch=epoch)


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {WAIT}s"
        await asyncio.sleep(0.01)


# --- history stores: idempotency ------------------------------------------------------------


async def test_a_key_appends_once_and_a_repeat_gets_the_first_position(
    history_store: HistoryStore,
) -> None:
    first = await history_store.add("room", pub(1), KEEP, key("k1"))
    await history_store.add("room", pub(2), KEEP)
    for _ in range(2):
        with pytest.raises(Suppressed) as repeat:
            await history_store.add("room", pub(1), KEEP, key("k1"))
        assert repeat.value.reason is SuppressReason.IDEMPOTENCY
        assert repeat.value.position == StreamPosition(first.offset, first.epoch)
    other = await history_store.add("room", pub(3), KEEP, key("k2"))
    elsewhere = await history_store.add("other", pub(1), KEEP, key("k1"))  # keys are per channel
    page = await history_store.read("room")
    assert [p.data for p in page.publications] == [pub(1).data, pub(2).data, pub(3).data]
    assert (first.offset, other.offset, elsewhere.offset) == (1, 3, 1)


async def test_concurrent_adds_with_one_key_append_once(history_store: HistoryStore) -> None:
    outcomes = await asyncio.gather(
        *(history_store.add("room", pub(n), KEEP, key("same")) for n in range(8)),
        return_exceptions=True,
    )
    added = [o for o in outcomes if isinstance(o, Publication)]
    suppressed = [o for o in outcomes if isinstance(o, Suppressed)]
    assert len(added) == 1, outcomes
    assert len(suppressed) == 7, outcomes
    assert {s.position for s in suppressed} == {StreamPosition(added[0].offset, added[0].epoch)}
    assert len((await history_store.read("room")).publications) == 1


@pytest.fixture(params=sorted(set(HISTORY_ENGINES) - {"nats"}))
async def clocked_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[HistoryStore]:
    """A started history store whose idempotency records expire by the injected clock: every
    engine but NATS, where JetStream's duplicate window runs on the server's clock (its own
    test is in ``tests/engines/nats/test_history.py``)."""
    factory = HISTORY_ENGINES[request.param]
    for make in with_engine(request.param, tmp_path, lambda: factory(tmp_path, clock)):
        store = make()
        await store.start()
        try:
            yield store
        finally:
            await store.close()


async def test_a_key_is_forgotten_after_the_ttl(
    clocked_store: HistoryStore, clock: FakeClock
) -> None:
    first = await clocked_store.add("room", pub(1), KEEP, key("k"))
    clock.advance(IDEMPOTENCY_TTL - 1)
    with pytest.raises(Suppressed):
        await clocked_store.add("room", pub(1), KEEP, key("k"))
    clock.advance(2)
    again = await clocked_store.add("room", pub(1), KEEP, key("k"))
    assert again.offset == first.offset + 1


# --- history stores: versions ---------------------------------------------------------------


async def test_a_version_not_newer_than_the_last_is_dropped(history_store: HistoryStore) -> None:
    one = await history_store.add("state", pub(1), KEEP, version(1))
    with pytest.raises(Suppressed) as stale:
        await history_store.add("state", pub(2), KEEP, version(1))
    assert stale.value.reason is SuppressReason.VERSION
    assert stale.value.position == StreamPosition(one.offset, one.epoch)  # the stream's top
    three = await history_store.add("state", pub(3), KEEP, version(3))
    with pytest.raises(Suppressed) as older:
        await history_store.add("state", pub(4), KEEP, version(2))
    assert older.value.position == StreamPosition(three.offset, three.epoch)
    page = await history_store.read("state")
    assert [p.data for p in page.publications] == [pub(1).data, pub(3).data]


async def test_a_new_version_epoch_starts_the_versions_again(history_store: HistoryStore) -> None:
    await history_store.add("state", pub(1), KEEP, version(10, "a"))
    restarted = await history_store.add("state", pub(2), KEEP, version(1, "b"))  # another epoch
    with pytest.raises(Suppressed):
        await history_store.add("state", pub(3), KEEP, version(1, "b"))
    with pytest.raises(Suppressed):  # no epoch named: compared with the last, whatever its epoch
        await history_store.add("state", pub(4), KEEP, version(1))
    newer = await history_store.add("state", pub(5), KEEP, version(2))
    assert newer.offset == restarted.offset + 1


async def test_a_publication_without_a_version_keeps_the_last_one(
    history_store: HistoryStore,
) -> None:
    await history_store.add("state", pub(1), KEEP, version(5))
    await history_store.add("state", pub(2), KEEP)
    with pytest.raises(Suppressed):
        await history_store.add("state", pub(3), KEEP, version(4))
    assert (await history_store.add("state", pub(4), KEEP, version(6))).offset == 3


async def test_the_version_goes_with_the_position(
    history_store: HistoryStore, clock: FakeClock
) -> None:
    short = HistoryOptions(size=10, ttl=60.0, meta_ttl=120.0)
    first = await history_store.add("state", pub(1), short, version(5))
    clock.advance(121)  # the position expired: a new epoch, no last version
    again = await history_store.add("state", pub(2), short, version(1))
    assert again.epoch != first.epoch
    await history_store.remove("state")
    assert (await history_store.add("state", pub(3), short, version(1))).offset == 1


# --- brokers: channels without history ------------------------------------------------------


@pytest.fixture
async def brokers(make_broker: Callable[[], Broker]) -> AsyncIterator[list[tuple[Broker, list]]]:
    made: list[tuple[Broker, list[tuple[str, ChannelEvent]]]] = []
    for _ in range(2):
        received: list[tuple[str, ChannelEvent]] = []
        broker = make_broker()
        await broker.start(lambda channel, event, r=received: r.append((channel, event)))  # type: ignore[misc]
        made.append((broker, received))
    yield made
    for broker, _ in made:
        await broker.close()


async def test_a_broker_publishes_once_per_key(brokers: list[tuple[Broker, list]]) -> None:
    (one, got), (two, _) = brokers
    await one.subscribe("room")
    await one.publish_once("room", pub(1), "k")
    with pytest.raises(Suppressed) as repeat:
        await one.publish_once("room", pub(1), "k")
    assert (repeat.value.reason, repeat.value.position) == (
        SuppressReason.IDEMPOTENCY,
        StreamPosition(0, ""),
    )
    if not isinstance(one, MemoryBroker):  # a memory broker's keys stay in its process
        with pytest.raises(Suppressed):
            await two.publish_once("room", pub(1), "k")
    await one.publish_once("room", pub(2), "k2")
    await one.publish_once("elsewhere", pub(3), "k")  # keys are per channel
    await one.publish("room", Publication(data=b'"marker"'))
    await until(lambda: len(got) >= 3, "the marker")
    assert [event for _, event in got] == [pub(1), pub(2), Publication(data=b'"marker"')]


# --- brokers adding to their own engine's stream --------------------------------------------


class Process:
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
        await process.broker.subscribe("room")
    yield made
    for process in made:
        await process.broker.close()
        await process.store.close()


async def test_a_key_retried_through_every_process_is_delivered_once(
    processes: list[Process],
) -> None:
    first = processes[0]
    added = await first.broker.publish_to_stream("room", pub(1), KEEP, first.store, key("k"))
    results = [StreamPosition(added.offset, added.epoch)]
    for process in processes:  # the retries, through every process (the first one's too)
        with pytest.raises(Suppressed) as retry:
            await process.broker.publish_to_stream("room", pub(1), KEEP, process.store, key("k"))
        assert retry.value.reason is SuppressReason.IDEMPOTENCY
        results.append(retry.value.position)
    assert len(set(results)) == 1, results  # every process got the first result
    marker = await processes[0].broker.publish_to_stream("room", pub(2), KEEP, processes[0].store)
    for process in processes:
        await until(lambda p=process: len(p.received) >= 2, "the marker")  # type: ignore[misc]
        assert [(p.offset, p.data) for p in process.received] == [
            (results[0].offset, pub(1).data),
            (marker.offset, pub(2).data),
        ]


async def test_a_stale_version_is_neither_stored_nor_delivered(processes: list[Process]) -> None:
    one, two, _ = processes
    await one.broker.publish_to_stream("room", pub(1), KEEP, one.store, version(2))
    with pytest.raises(Suppressed) as stale:
        await two.broker.publish_to_stream("room", pub(2), KEEP, two.store, version(2))
    assert stale.value.reason is SuppressReason.VERSION
    await two.broker.publish_to_stream("room", pub(3), KEEP, two.store, version(3))
    await until(lambda: len(one.received) >= 2, "two publications")
    assert [p.data for p in one.received] == [pub(1).data, pub(3).data]
    page = await one.store.read("room")
    assert [p.data for p in page.publications] == [pub(1).data, pub(3).data]
