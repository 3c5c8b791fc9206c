"""Fixtures of the PostgreSQL engine's tests: the test's own table prefix on the test database
(its tables and functions dropped afterwards), started nodes on those tables, and a TCP proxy
in front of the database to cut or freeze a link with.

The engine's modules are imported inside the fixtures, so that a missing driver reaches the
test modules' ``require_module`` (skip, or fail under ``CI=true``) instead of failing here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from roomcast.engines.base import HistoryOptions
from roomcast.publication import ChannelEvent
from tests.engines.conftest import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_URL,
    drop_postgres_tables,
    postgres_prefix,
    require_postgres,
)
from tests.support.tcp_proxy import Proxy

if TYPE_CHECKING:
    from roomcast.engines.postgres import PostgresBroker, PostgresHistoryStore

KEEP = HistoryOptions(size=100, ttl=300.0)
Received = list[tuple[str, ChannelEvent]]


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    """The test's table prefix; what the test created under it is dropped afterwards."""
    require_postgres("postgres")
    yield postgres_prefix(tmp_path)
    drop_postgres_tables(tmp_path)


class Node:
    """A started broker (and maybe a history store) and what its handler received."""

    def __init__(self, broker: PostgresBroker, store: PostgresHistoryStore | None = None) -> None:
        self.broker, self.store = broker, store
        self.received: Received = []
        self.gaps = 0

    def handle(self, channel: str, event: ChannelEvent) -> None:
        self.received.append((channel, event))

    def gap(self) -> None:
        self.gaps += 1

    async def start(self) -> Node:
        if self.store is not None:
            await self.store.start()
        await self.broker.start(self.handle, self.gap)
        return self

    async def close(self) -> None:
        await self.broker.close()
        if self.store is not None:
            await self.store.close()


@pytest.fixture
async def nodes(prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Starts nodes on the test's tables: ``await make(url=..., history=True, **broker_kw)``."""
    from roomcast.engines.postgres import PostgresBroker, PostgresHistoryStore

    made: list[Node] = []

    async def make(url: str = POSTGRES_URL, history: bool = False, **options: Any) -> Node:
        store = PostgresHistoryStore(url, prefix=prefix) if history else None
        node = Node(PostgresBroker(url, prefix=prefix, **options), store)
        made.append(node)
        return await node.start()

    yield make
    for node in made:
        await node.close()


@pytest.fixture
async def proxy(prefix: str) -> AsyncIterator[Proxy]:
    """A proxy to the test database, serving until the test cuts it."""
    proxy = Proxy(POSTGRES_HOST, POSTGRES_PORT)
    await proxy.start()
    yield proxy
    if proxy.serving:
        await proxy.cut()


def proxied(proxy: Proxy) -> str:
    """The test database's URL through ``proxy``."""
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
