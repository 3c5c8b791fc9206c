"""What only the Redis history store does: expire on Redis' own clock, and report an
unreachable server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomcast.engines.base import HistoryOptions
from roomcast.errors import EngineUnavailable
from roomcast.publication import Publication, StreamPosition
from tests.engines.conftest import (
    REDIS_HOST,
    REDIS_PORT,
    delete_redis_keys,
    redis_prefix,
    require_redis,
)
from tests.support.ci import require_module

require_module("redis", hint="pip install 'roomcast[redis]'")

from roomcast.engines.redis import RedisHistoryStore  # noqa: E402

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


async def test_unreachable_server_raises_engine_unavailable() -> None:
    store = RedisHistoryStore("redis://127.0.0.1:1/0")
    with pytest.raises(EngineUnavailable, match=r"Redis at 127\.0\.0\.1:1/0"):
        await store.start()
    await store.close()
