"""The HistoryStore contract, run against every engine in ``conftest.HISTORY_ENGINES``.

Written against the interface only: offsets, epochs, trimming, expiry, paging and completeness
as the recovery protocol relies on them (centrifugal/centrifuge's semantics).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from roomcast.engines import create_history_store
from roomcast.engines.base import HistoryOptions, HistoryStore
from roomcast.engines.memory import MemoryHistoryStore
from roomcast.errors import ConfigurationError, EngineUnavailable
from roomcast.publication import ClientInfo, Publication, StreamPosition
from tests.engines.conftest import FakeClock
from tests.support.ci import require_module

KEEP = HistoryOptions(size=100, ttl=3600.0)


def pub(n: int) -> Publication:
    return Publication(data=b'{"n":%d}' % n)


async def fill(store: HistoryStore, count: int, options: HistoryOptions = KEEP) -> str:
    """Publish ``count`` publications into "room"; returns the epoch."""
    epoch = ""
    for n in range(1, count + 1):
        epoch = (await store.add("room", pub(n), options)).epoch
    return epoch


def offsets(publications: list[Publication]) -> list[int]:
    return [p.offset for p in publications]


async def test_offsets_start_at_1_and_grow_by_one_in_one_epoch(history_store: HistoryStore) -> None:
    added = [await history_store.add("room", pub(n), KEEP) for n in range(1, 6)]
    assert offsets(added) == [1, 2, 3, 4, 5]
    assert len({p.epoch for p in added}) == 1
    assert added[0].epoch != ""
    assert [p.data for p in added] == [pub(n).data for n in range(1, 6)]
    page = await history_store.read("room")
    assert page.position == StreamPosition(5, added[0].epoch)
    assert page.complete
    assert page.publications == added


async def test_channels_are_independent(history_store: HistoryStore) -> None:
    a = await history_store.add("a", pub(1), KEEP)
    await history_store.add("a", pub(2), KEEP)
    b = await history_store.add("b", pub(1), KEEP)
    assert (a.offset, b.offset) == (1, 1)
    assert a.epoch != b.epoch
    assert offsets((await history_store.read("b")).publications) == [1]


async def test_reading_a_new_channel_fixes_the_epoch_of_its_first_publication(
    history_store: HistoryStore,
) -> None:
    page = await history_store.read("room")
    assert page.publications == []
    assert page.complete
    assert page.position.offset == 0
    assert page.position.epoch != ""
    first = await history_store.add("room", pub(1), KEEP)
    assert (first.offset, first.epoch) == (1, page.position.epoch)
    recovered = await history_store.read("room", since=page.position)
    assert recovered.complete
    assert recovered.publications == [first]


async def test_size_trims_the_oldest(history_store: HistoryStore) -> None:
    epoch = await fill(history_store, 5, HistoryOptions(size=3, ttl=3600.0))
    page = await history_store.read("room")
    assert offsets(page.publications) == [3, 4, 5]
    assert page.position == StreamPosition(5, epoch)
    gone = await history_store.read("room", since=StreamPosition(1, epoch))
    assert (gone.complete, gone.publications) == (False, [])
    kept = await history_store.read("room", since=StreamPosition(2, epoch))
    assert kept.complete
    assert offsets(kept.publications) == [3, 4, 5]


async def test_zero_size_keeps_nothing_but_still_counts(history_store: HistoryStore) -> None:
    await fill(history_store, 2)
    added = await history_store.add("room", pub(3), HistoryOptions(size=0, ttl=60.0))
    assert added.offset == 3
    page = await history_store.read("room")
    assert (page.publications, page.position.offset) == ([], 3)


async def test_publications_expire_after_ttl(history_store: HistoryStore, clock: FakeClock) -> None:
    options = HistoryOptions(size=10, ttl=10.0)
    epoch = await fill(history_store, 2, options)
    clock.advance(5)
    await history_store.add("room", pub(3), options)
    clock.advance(6)  # 1 and 2 are 11 s old, 3 is 6 s old
    page = await history_store.read("room")
    assert offsets(page.publications) == [3]
    assert page.position == StreamPosition(3, epoch)
    assert not (await history_store.read("room", since=StreamPosition(0, epoch))).complete
    after_two = await history_store.read("room", since=StreamPosition(2, epoch))
    assert after_two.complete
    assert offsets(after_two.publications) == [3]
    clock.advance(5)
    page = await history_store.read("room")
    assert (page.publications, page.position) == ([], StreamPosition(3, epoch))
    up_to_date = await history_store.read("room", since=StreamPosition(3, epoch))
    assert (up_to_date.complete, up_to_date.publications) == (True, [])


async def test_position_outlives_publications_until_meta_ttl(
    history_store: HistoryStore, clock: FakeClock
) -> None:
    options = HistoryOptions(size=10, ttl=10.0, meta_ttl=100.0)
    epoch = await fill(history_store, 1, options)
    clock.advance(99)
    assert (await history_store.read("room")).position == StreamPosition(1, epoch)
    again = await history_store.add("room", pub(2), options)
    assert (again.offset, again.epoch) == (2, epoch)
    clock.advance(99)  # the add renewed the meta TTL
    assert (await history_store.read("room")).position == StreamPosition(2, epoch)


async def test_expired_meta_starts_a_new_epoch(
    history_store: HistoryStore, clock: FakeClock
) -> None:
    options = HistoryOptions(size=10, ttl=10.0, meta_ttl=100.0)
    old = await fill(history_store, 3, options)
    clock.advance(101)
    added = await history_store.add("room", pub(4), options)
    assert added.offset == 1
    assert added.epoch != old
    page = await history_store.read("room")
    assert page.publications == [added]
    stale = await history_store.read("room", since=StreamPosition(3, old))
    assert (stale.complete, stale.publications) == (False, [])


async def test_read_after_meta_expiry_sees_a_new_empty_stream(
    history_store: HistoryStore, clock: FakeClock
) -> None:
    options = HistoryOptions(size=10, ttl=1000.0, meta_ttl=100.0)
    old = await fill(history_store, 3, options)
    clock.advance(101)
    page = await history_store.read("room")
    assert page.publications == []
    assert page.position.offset == 0
    assert page.position.epoch != old
    assert (await history_store.add("room", pub(1), options)).epoch == page.position.epoch


async def test_forward_paging_with_since_and_limit(history_store: HistoryStore) -> None:
    epoch = await fill(history_store, 10)
    first = await history_store.read("room", limit=3)
    assert offsets(first.publications) == [1, 2, 3]
    assert first.position == StreamPosition(10, epoch)
    second = await history_store.read("room", since=StreamPosition(3, epoch), limit=3)
    assert (second.complete, offsets(second.publications)) == (True, [4, 5, 6])
    rest = await history_store.read("room", since=StreamPosition(6, epoch), limit=-1)
    assert offsets(rest.publications) == [7, 8, 9, 10]
    end = await history_store.read("room", since=StreamPosition(10, epoch))
    assert (end.complete, end.publications) == (True, [])
    assert offsets((await history_store.read("room", limit=-7)).publications) == list(range(1, 11))


async def test_limit_zero_returns_only_the_position(history_store: HistoryStore) -> None:
    epoch = await fill(history_store, 4)
    page = await history_store.read("room", limit=0)
    assert (page.publications, page.position, page.complete) == (
        [],
        StreamPosition(4, epoch),
        True,
    )
    with_since = await history_store.read("room", since=StreamPosition(1, epoch), limit=0)
    assert (with_since.publications, with_since.complete) == ([], True)


async def test_reverse_reads_newest_first(history_store: HistoryStore) -> None:
    epoch = await fill(history_store, 10)
    assert offsets((await history_store.read("room", reverse=True)).publications) == list(
        range(10, 0, -1)
    )
    assert offsets((await history_store.read("room", reverse=True, limit=2)).publications) == [
        10,
        9,
    ]
    before = await history_store.read("room", since=StreamPosition(9, epoch), reverse=True, limit=3)
    assert (before.complete, offsets(before.publications)) == (True, [8, 7, 6])
    from_top = await history_store.read("room", since=StreamPosition(11, epoch), reverse=True)
    assert offsets(from_top.publications) == list(range(10, 0, -1))
    nothing_before = await history_store.read("room", since=StreamPosition(1, epoch), reverse=True)
    assert (nothing_before.complete, nothing_before.publications) == (True, [])


async def test_reverse_past_what_is_kept_is_incomplete(history_store: HistoryStore) -> None:
    epoch = await fill(history_store, 6, HistoryOptions(size=3, ttl=3600.0))
    kept = await history_store.read("room", since=StreamPosition(6, epoch), reverse=True)
    assert (kept.complete, offsets(kept.publications)) == (True, [5, 4])
    gone = await history_store.read("room", since=StreamPosition(4, epoch), reverse=True)
    assert (gone.complete, gone.publications) == (False, [])


async def test_since_in_another_epoch_is_incomplete(history_store: HistoryStore) -> None:
    epoch = await fill(history_store, 3)
    other = "x" if epoch != "x" else "y"
    page = await history_store.read("room", since=StreamPosition(1, other))
    assert (page.complete, page.publications) == (False, [])
    assert page.position == StreamPosition(3, epoch)
    reverse = await history_store.read("room", since=StreamPosition(3, other), reverse=True)
    assert (reverse.complete, reverse.publications) == (False, [])


async def test_since_beyond_the_top_is_incomplete(history_store: HistoryStore) -> None:
    epoch = await fill(history_store, 3)
    ahead = await history_store.read("room", since=StreamPosition(7, epoch))
    assert (ahead.complete, ahead.publications) == (False, [])
    reverse = await history_store.read("room", since=StreamPosition(9, epoch), reverse=True)
    assert (reverse.complete, reverse.publications) == (False, [])


async def test_remove_starts_a_new_epoch(history_store: HistoryStore) -> None:
    old = await fill(history_store, 3)
    await history_store.remove("room")
    page = await history_store.read("room")
    assert page.publications == []
    assert page.position.offset == 0
    added = await history_store.add("room", pub(1), KEEP)
    assert (added.offset, added.epoch != old) == (1, True)
    assert (await history_store.read("room")).publications == [added]
    await history_store.remove("never-used")


async def test_remove_then_add_without_a_read_in_between(history_store: HistoryStore) -> None:
    old = await fill(history_store, 2)
    await history_store.remove("room")
    added = await history_store.add("room", pub(1), KEEP)
    assert (added.offset, added.epoch != old) == (1, True)
    assert offsets((await history_store.read("room")).publications) == [1]


async def test_concurrent_adds_get_unique_consecutive_offsets(
    history_store: HistoryStore,
) -> None:
    options = HistoryOptions(size=1000, ttl=3600.0)

    async def publisher(task: int) -> list[Publication]:
        added = []
        for n in range(25):
            added.append(await history_store.add("room", pub(task * 100 + n), options))
            await asyncio.sleep(0)
        return added

    results = await asyncio.gather(*(publisher(task) for task in range(20)))
    added = [p for result in results for p in result]
    assert sorted(offsets(added)) == list(range(1, 501))
    assert len({p.epoch for p in added}) == 1
    page = await history_store.read("room")
    assert offsets(page.publications) == list(range(1, 501))
    by_offset = {p.offset: p.data for p in added}
    assert all(p.data == by_offset[p.offset] for p in page.publications)


async def test_publications_round_trip_exactly(history_store: HistoryStore) -> None:
    full = Publication(
        data=b'{"text":"h\xc3\xa9llo \\u0000"}\x00\xff',
        info=ClientInfo(
            user="u-\u00e9",
            client="c1",
            conn_info=b'{"name":"\xe2\x9c\x93"}',
            chan_info=b"\x00\x01binary",
        ),
        tags={"kind": "chat", "emoji": "\U0001f600", "empty": ""},
    )
    anonymous = Publication(data=b"{}", info=ClientInfo(user="", client="c2"))
    bare = Publication(data=b"")
    added = [await history_store.add("room", p, KEEP) for p in (full, anonymous, bare)]
    page = await history_store.read("room")
    assert page.publications == added
    for original, stored in zip((full, anonymous, bare), page.publications, strict=True):
        assert (stored.data, stored.info, stored.tags) == (
            original.data,
            original.info,
            original.tags,
        )
        assert type(stored.data) is bytes


async def test_not_started_or_closed_raises_engine_unavailable(
    make_history_store: Callable[[], HistoryStore],
) -> None:
    store = make_history_store()
    with pytest.raises(EngineUnavailable):
        await store.add("room", pub(1), KEEP)
    await store.start()
    await store.add("room", pub(1), KEEP)
    await store.close()
    await store.close()
    with pytest.raises(EngineUnavailable):
        await store.read("room")


def test_factory_memory_scheme() -> None:
    first, second = create_history_store("memory://"), create_history_store("memory://")
    assert isinstance(first, MemoryHistoryStore)
    assert first is not second


def test_factory_redis_scheme_builds_without_connecting() -> None:
    require_module("redis", hint="pip install 'roomcast[redis]'")
    from roomcast.engines.redis import RedisHistoryStore

    assert isinstance(create_history_store("redis://localhost:6379/2?prefix=x:"), RedisHistoryStore)
    with pytest.raises(ConfigurationError, match="malformed Redis URL"):
        create_history_store("redis://")


def test_factory_nats_scheme_builds_without_connecting() -> None:
    require_module("nats", hint="pip install 'roomcast[nats]'")
    from roomcast.engines.nats.history import NatsHistoryStore

    assert isinstance(create_history_store("nats://n:4222?prefix=x"), NatsHistoryStore)
    with pytest.raises(ConfigurationError, match="malformed NATS URL"):
        create_history_store("nats://")


@pytest.mark.parametrize("url", ["bogus://x", "", "history.sqlite3"])
def test_factory_unknown_schemes_are_named(url: str) -> None:
    with pytest.raises(ConfigurationError, match="unknown history store URL scheme"):
        create_history_store(url)
