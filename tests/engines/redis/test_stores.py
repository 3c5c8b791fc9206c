"""What only the Redis stores do: expire on Redis' own clock, and report an unreachable server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roomcast.engines.base import HistoryOptions, PresenceStats
from roomcast.errors import EngineUnavailable
from roomcast.publication import ClientInfo, Publication, StreamPosition
from tests.engines.conftest import (
    REDIS_HOST,
    REDIS_PORT,
    delete_redis_keys,
    redis_prefix,
    require_redis,
)

pytest.importorskip("redis")

from roomcast.engines.redis import RedisHistoryStore, RedisPresenceStore

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    require_redis("redis")
    yield redis_prefix(tmp_path)
    delete_redis_keys(tmp_path)


async def test_history_expires_on_the_server_clock(prefix: str) -> None:
    store = RedisHistoryStore(URL, prefix=prefix)
    await store.start()
    try:
        options = HistoryOptions(size=10, ttl=0.3, meta_ttl=0.6)
        first = await store.add("room", Publication(data=b"1"), options)
        await asyncio.sleep(0.4)
        page = await store.read("room", since=StreamPosition(0, first.epoch))
        assert (page.complete, page.position) == (False, StreamPosition(1, first.epoch))
        await asyncio.sleep(0.3)
        again = await store.add("room", Publication(data=b"2"), options)
        assert again.offset == 1
        assert again.epoch != first.epoch
    finally:
        await store.close()


async def test_presence_expires_on_the_server_clock(prefix: str) -> None:
    store = RedisPresenceStore(URL, prefix=prefix)
    await store.start()
    try:
        await store.add("room", ClientInfo(user="u", client="short"), 0.2)
        await store.add("room", ClientInfo(user="u", client="long"), 5.0)
        await asyncio.sleep(0.3)
        assert set(await store.get("room")) == {"long"}
        assert await store.stats("room") == PresenceStats(1, 1)
    finally:
        await store.close()


@pytest.mark.parametrize("make", [RedisHistoryStore, RedisPresenceStore])
async def test_unreachable_server_raises_engine_unavailable(
    make: Callable[..., RedisHistoryStore | RedisPresenceStore],
) -> None:
    store = make("redis://127.0.0.1:1/0")
    with pytest.raises(EngineUnavailable, match=r"Redis at 127\.0\.0\.1:1/0"):
        await store.start()
    await store.close()
