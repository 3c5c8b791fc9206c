"""What only the Redis presence store does: expire on Redis' own clock, and report an
unreachable server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomcast.engines.base import PresenceStats
from roomcast.errors import EngineUnavailable
from roomcast.publication import ClientInfo
from tests.engines.conftest import (
    REDIS_HOST,
    REDIS_PORT,
    delete_redis_keys,
    redis_prefix,
    require_redis,
)
from tests.support.ci import require_module

require_module("redis", hint="pip install 'roomcast[redis]'")

from roomcast.engines.redis import RedisPresenceStore  # noqa: E402

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    require_redis("redis")
    yield redis_prefix(tmp_path)
    delete_redis_keys(tmp_path)


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


async def test_unreachable_server_raises_engine_unavailable() -> None:
    store = RedisPresenceStore("redis://127.0.0.1:1/0")
    with pytest.raises(EngineUnavailable, match=r"Redis at 127\.0\.0\.1:1/0"):
        await store.start()
    await store.close()
