"""How the PostgreSQL engines reach the database: a start against a server that is not there
fails promptly, with ``EngineUnavailable`` naming where it tried."""

from __future__ import annotations

import asyncio
import time

import pytest

from roomcast.errors import EngineUnavailable
from tests.engines.conftest import WAIT
from tests.support.ci import require_module

asyncpg = require_module("asyncpg", hint="pip install 'roomcast[postgres]'")

from roomcast.engines.postgres import (  # noqa: E402
    PostgresBroker,
    PostgresHistoryStore,
    PostgresPresenceStore,
)


async def test_start_against_a_closed_port_raises_promptly(prefix: str) -> None:
    url = "postgresql://postgres@127.0.0.1:1/test"
    began = time.monotonic()
    with pytest.raises(EngineUnavailable, match=r"127\.0\.0\.1:1/test"):
        await asyncio.wait_for(PostgresBroker(url, prefix=prefix).start(lambda c, e: None), WAIT)
    for store in (PostgresHistoryStore(url, prefix=prefix), PostgresPresenceStore(url)):
        with pytest.raises(EngineUnavailable):
            await asyncio.wait_for(store.start(), WAIT)
        await store.close()
    assert time.monotonic() - began < 4.0
