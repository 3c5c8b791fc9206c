"""What only the PostgreSQL history store does: expire on the database's clock, and sweep the
expired rows of every channel."""

from __future__ import annotations

import asyncio
import time

from roomcast.engines.base import HistoryOptions
from roomcast.publication import Publication, StreamPosition
from tests.engines.conftest import POSTGRES_URL, WAIT
from tests.support.ci import require_module

asyncpg = require_module("asyncpg", hint="pip install 'roomcast[postgres]'")

from roomcast.engines.postgres import PostgresHistoryStore  # noqa: E402


async def test_history_expires_on_the_database_clock(prefix: str) -> None:
    history = PostgresHistoryStore(POSTGRES_URL, prefix=prefix)
    await history.start()
    try:
        options = HistoryOptions(size=10, ttl=0.3, meta_ttl=0.6)
        first = await history.add("room", Publication(data=b"1"), options)
        await asyncio.sleep(0.4)
        page = await history.read("room", since=StreamPosition(0, first.epoch))
        assert (page.complete, page.position) == (False, StreamPosition(1, first.epoch))
        await asyncio.sleep(0.3)
        again = await history.add("room", Publication(data=b"2"), options)
        assert (again.offset, again.epoch != first.epoch) == (1, True)
    finally:
        await history.close()


async def test_sweeps_delete_expired_rows_of_every_channel(prefix: str) -> None:
    history = PostgresHistoryStore(POSTGRES_URL, prefix=prefix, sweep_interval=0.1)
    await history.start()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await history.add("a", Publication(data=b"1"), HistoryOptions(10, 0.1, meta_ttl=0.1))
        tables = [f'"{prefix}{name}"' for name in ("history", "history_meta")]

        async def rows() -> int:
            return sum([await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables])

        assert await rows() == 2
        deadline = time.monotonic() + WAIT
        while await rows():
            assert time.monotonic() < deadline, "the sweeps left expired rows"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
        await history.close()
