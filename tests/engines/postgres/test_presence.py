"""What only the PostgreSQL presence store does: expire on the database's clock, and sweep the
expired rows of every channel."""

from __future__ import annotations

import asyncio
import time

from roomcast.engines.base import PresenceStats
from roomcast.publication import ClientInfo
from tests.engines.conftest import POSTGRES_URL, WAIT
from tests.support.ci import require_module

asyncpg = require_module("asyncpg", hint="pip install 'roomcast[postgres]'")

from roomcast.engines.postgres import PostgresPresenceStore  # noqa: E402


async def test_presence_expires_on_the_database_clock(prefix: str) -> None:
    presence = PostgresPresenceStore(POSTGRES_URL, prefix=prefix)
    await presence.start()
    try:
        await presence.add("room", ClientInfo("u", "short"), 0.3)
        await presence.add("room", ClientInfo("u", "long"), 5.0)
        await asyncio.sleep(0.4)
        assert set(await presence.get("room")) == {"long"}
        assert await presence.stats("room") == PresenceStats(1, 1)
    finally:
        await presence.close()


async def test_sweeps_delete_expired_rows_of_every_channel(prefix: str) -> None:
    presence = PostgresPresenceStore(POSTGRES_URL, prefix=prefix, sweep_interval=0.1)
    await presence.start()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await presence.add("a", ClientInfo("u", "c"), 0.1)
        table = f'"{prefix}presence"'

        async def rows() -> int:
            count = await conn.fetchval(f"SELECT count(*) FROM {table}")
            assert isinstance(count, int)
            return count

        assert await rows() == 1
        deadline = time.monotonic() + WAIT
        while await rows():
            assert time.monotonic() < deadline, "the sweeps left expired rows"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
        await presence.close()
