"""How the PostgreSQL engines' tables and functions come to exist: once, however many
processes start at once."""

from __future__ import annotations

import asyncio

from roomcast.publication import Publication
from tests.engines.conftest import POSTGRES_URL
from tests.engines.postgres.conftest import KEEP
from tests.support.ci import require_module

asyncpg = require_module("asyncpg", hint="pip install 'roomcast[postgres]'")

from roomcast.engines.postgres import PostgresHistoryStore, PostgresPresenceStore  # noqa: E402


async def test_processes_starting_at_once_create_the_schema_once(prefix: str) -> None:
    url = f"{POSTGRES_URL}?schema={prefix}schema"
    stores = [PostgresHistoryStore(url, prefix=prefix) for _ in range(4)]
    stores += [PostgresPresenceStore(url, prefix=prefix) for _ in range(4)]
    try:
        await asyncio.gather(*(store.start() for store in stores))
        added = await stores[0].add("room", Publication(data=b"1"), KEEP)
        assert (await stores[1].read("room")).publications == [added]
    finally:
        for store in stores:
            await store.close()
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{prefix}schema" CASCADE')
        finally:
            await conn.close()
