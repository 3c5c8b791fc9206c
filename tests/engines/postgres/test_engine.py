"""What only the PostgreSQL engine does: its URL, events past NOTIFY's size limit, a LISTEN
link that breaks and comes back, publishing inside an application's transaction (directly and
through a real server), the database's own clock, and schema creation by racing processes.

Every wait is bounded. A delivery that must not happen is checked by publishing a marker
afterwards: notifications arrive in commit order, so once the marker is in, anything
committed before it would be too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.engines.base import HistoryOptions, PresenceStats
from roomcast.engines.memory import MemoryHistoryStore
from roomcast.errors import ConfigurationError, EngineUnavailable
from roomcast.publication import ChannelEvent, ClientInfo, Join, Publication, StreamPosition
from tests.engines.conftest import (
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_URL,
    drop_postgres_tables,
    postgres_prefix,
    require_postgres,
)
from tests.support.server import start_app
from tests.support.tcp_proxy import Proxy
from tests.support.wsclient import connect, recv

asyncpg = pytest.importorskip("asyncpg")

from roomcast.engines.postgres.broker import PostgresBroker  # noqa: E402
from roomcast.engines.postgres.connection import parse_postgres_url  # noqa: E402
from roomcast.engines.postgres.history import PostgresHistoryStore  # noqa: E402
from roomcast.engines.postgres.presence import PostgresPresenceStore  # noqa: E402

WAIT = 5.0
KEEP = HistoryOptions(size=100, ttl=300.0)
Received = list[tuple[str, ChannelEvent]]


async def until(predicate: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
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
    proxy = Proxy(POSTGRES_HOST, POSTGRES_PORT)
    await proxy.start()
    yield proxy
    if proxy.serving:
        await proxy.cut()


def proxied(proxy: Proxy) -> str:
    return f"postgresql://postgres@127.0.0.1:{proxy.port}/test"


# --- URL and factories ---------------------------------------------------------------------


def test_url_parameters_are_taken_out_of_the_dsn() -> None:
    config = parse_postgres_url(
        "postgresql://u:secret@db:6432/app?prefix=rc_&schema=realtime&sslmode=disable"
        "&listen_url=postgresql%3A%2F%2Fu%40primary%3A5432%2Fapp&pool_size=3"
    )
    assert config.dsn == "postgresql://u:secret@db:6432/app?sslmode=disable"
    assert config.listen_dsn == "postgresql://u@primary:5432/app"
    assert (config.prefix, config.schema, config.pool_size) == ("rc_", "realtime", 3)
    assert (config.where, config.listen_where) == ("db:6432/app", "primary:5432/app")
    plain = parse_postgres_url("postgres://db/app")
    assert (plain.dsn, plain.listen_dsn, plain.prefix, plain.schema) == (
        "postgres://db/app",
        "postgres://db/app",
        "roomcast_",
        None,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u:secret@db/app?prefx=x", "unknown parameter 'prefx'"),
        ("postgresql://db/app?password=secret&prefx=x", "unknown parameter 'prefx'"),
        ("postgresql://db/app?prefix=Bad-Prefix", "prefix='Bad-Prefix'"),
        ("postgresql://db/app?schema=1x", "schema='1x'"),
        ("postgresql://db/app?pool_size=0", "pool_size"),
        ("postgresql://db/app?listen_url=redis%3A%2F%2Fx", "malformed PostgreSQL listen_url"),
        ("postgresql://db/app?listen_url=postgresql%3A%2F%2Fx%3Fprefix%3Dy", "takes only"),
        ("mysql://db/app", "malformed PostgreSQL URL"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        parse_postgres_url(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_factories_build_without_connecting(scheme: str) -> None:
    url = f"{scheme}://u@localhost:5432/app?prefix=x_"
    assert isinstance(create_broker(url), PostgresBroker)
    assert isinstance(create_history_store(url), PostgresHistoryStore)
    assert isinstance(create_presence_store(url), PostgresPresenceStore)
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        create_broker(f"{scheme}://localhost/app?nope=1")


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


# --- events past NOTIFY's limit ------------------------------------------------------------


async def test_events_over_the_notify_limit_travel_through_the_side_table(
    nodes: Callable[..., Any], prefix: str
) -> None:
    one, two = await nodes(history=True), await nodes()
    await two.broker.subscribe("room")
    big = Publication(data=b'"' + b"x" * 20_000 + b'"', info=ClientInfo("u", "c"), tags={"k": "v"})
    await one.broker.publish("room", big)
    await one.broker.publish("room", Join(ClientInfo("u", "c", b"{}" * 5000)))
    added = await one.broker.publish_to_stream("room", big, KEEP, one.store)
    await one.broker.publish("room", Publication(data=b"small"))
    await until(lambda: len(two.received) == 4, f"got {two.received!r:.200}")
    assert [event for _, event in two.received] == [
        big,
        Join(ClientInfo("u", "c", b"{}" * 5000)),
        added,
        Publication(data=b"small"),
    ]
    assert added.offset == 1
    assert (await one.store.read("room")).publications == [added]
    assert two.gaps == 0

    # Rows outlive their notification by keep_large seconds; an oversized publish deletes
    # the older ones.
    cleaner = await nodes(keep_large=0.0)
    await cleaner.broker.publish("room", big)
    await until(lambda: len(two.received) == 5, "the last oversized event did not arrive")
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        count = await conn.fetchval(f'SELECT count(*) FROM "{prefix}broker_large"')
    finally:
        await conn.close()
    assert count == 1


async def test_an_oversized_event_whose_row_is_gone_is_reported_as_a_gap(
    nodes: Callable[..., Any], prefix: str
) -> None:
    one = await nodes()
    await one.broker.subscribe("room")
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(
            f"SELECT pg_notify('public.{prefix}broker', 'L987654:' || $1)", "cm9vbQ=="
        )
    finally:
        await conn.close()
    await until(lambda: one.gaps == 1, "the lost event was not reported")
    assert one.received == []


# --- the LISTEN link -----------------------------------------------------------------------


async def test_a_cut_link_fails_fast_then_recovers_and_reports_the_gap(
    nodes: Callable[..., Any], proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roomcast.engines.postgres")
    cut = await nodes(proxied(proxy), backoff=0.05, max_backoff=0.2)
    direct = await nodes()
    await cut.broker.subscribe("room")
    assert cut.broker.connected

    await proxy.cut()
    began = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(cut.broker.publish("room", Publication(data=b"1")), WAIT)
    assert time.monotonic() - began < 2.5
    await until(lambda: not cut.broker.connected, "the broker did not notice the cut")
    with pytest.raises(EngineUnavailable, match="down"):
        await cut.broker.subscribe("other")
    await direct.broker.publish("room", Publication(data=b"lost"))
    assert cut.gaps == 0

    await proxy.start()  # same port: the watcher reconnects and LISTENs again
    await until(lambda: cut.broker.connected, "the broker never reconnected")
    assert cut.gaps == 1
    await direct.broker.publish("room", Publication(data=b"back"))
    await until(lambda: bool(cut.received), "deliveries did not resume")
    assert cut.received == [("room", Publication(data=b"back"))]
    await cut.broker.publish("room", Publication(data=b"again"))  # its pool recovered too
    await until(lambda: len(cut.received) == 2, "the broker's own publish did not arrive")
    messages = [record.getMessage() for record in caplog.records]
    assert any("lost its LISTEN connection" in m for m in messages), messages
    assert any("reconnected" in m and "listens again" in m for m in messages), messages


async def test_publishing_into_a_black_hole_raises_within_the_timeout(
    nodes: Callable[..., Any], proxy: Proxy
) -> None:
    node = await nodes(proxied(proxy), timeout=0.5)
    proxy.frozen = True
    began = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(node.broker.publish("room", Publication(data=b"1")), WAIT)
    assert time.monotonic() - began < 1.5


async def test_a_silent_link_is_found_by_the_ping(nodes: Callable[..., Any], proxy: Proxy) -> None:
    url = f"{POSTGRES_URL}?listen_url=postgresql%3A%2F%2Fpostgres%40127.0.0.1%3A{proxy.port}%2Ftest"
    node = await nodes(url, ping_interval=0.2, timeout=0.3, backoff=0.05, max_backoff=0.1)
    proxy.frozen = True
    await until(lambda: not node.broker.connected, "the frozen link went unnoticed")
    proxy.frozen = False
    proxy.abort_connections()
    await until(lambda: node.broker.connected, "the broker never reconnected")
    assert node.gaps == 1


async def test_queries_go_to_url_and_listen_to_listen_url(
    nodes: Callable[..., Any], proxy: Proxy
) -> None:
    url = f"{POSTGRES_URL}?listen_url=postgresql%3A%2F%2Fpostgres%40127.0.0.1%3A{proxy.port}%2Ftest"
    node = await nodes(url, backoff=0.05, max_backoff=0.2)
    await node.broker.subscribe("room")
    await proxy.cut()
    await until(lambda: not node.broker.connected, "the LISTEN link's cut went unnoticed")
    await node.broker.publish("room", Publication(data=b"published while deaf"))
    await proxy.start()
    await until(lambda: node.broker.connected, "the broker never reconnected")
    await node.broker.publish("room", Publication(data=b"heard"))
    await until(lambda: bool(node.received), "nothing arrived")
    assert node.received == [("room", Publication(data=b"heard"))]


# --- publishing inside the application's transaction ---------------------------------------


async def test_a_committed_transaction_delivers_and_keeps_history(
    nodes: Callable[..., Any],
) -> None:
    node = await nodes(history=True)
    await node.broker.subscribe("orders")
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        async with conn.transaction():
            added = await node.broker.publish_in_transaction(
                conn, "orders", Publication(data=b'"paid"'), KEEP, node.store
            )
            same = Publication(data=b'"twice"')
            await node.broker.publish_in_transaction(conn, "orders", same, None, None)
            await node.broker.publish_in_transaction(conn, "orders", same, None, None)
            await node.broker.publish("orders", Publication(data=b'"marker"'))
            await until(lambda: bool(node.received), "the marker did not arrive")
            assert node.received == [("orders", Publication(data=b'"marker"'))]
        await until(lambda: len(node.received) == 4, "the commit delivered nothing")
    finally:
        await conn.close()
    assert added.offset == 1
    assert [event for _, event in node.received[1:]] == [added, same, same]
    assert (await node.store.read("orders")).publications == [added]


async def test_a_rolled_back_transaction_leaves_no_trace(nodes: Callable[..., Any]) -> None:
    node = await nodes(history=True)
    await node.broker.subscribe("orders")
    pool = await asyncpg.create_pool(POSTGRES_URL, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            big = Publication(data=b'"' + b"y" * 10_000 + b'"')
            await node.broker.publish_in_transaction(conn, "orders", big, KEEP, node.store)
            await node.broker.publish_in_transaction(conn, "orders", big, None, None)
            await transaction.rollback()
    finally:
        await pool.close()
    await node.broker.publish("orders", Publication(data=b'"marker"'))
    await until(lambda: bool(node.received), "the marker did not arrive")
    assert node.received == [("orders", Publication(data=b'"marker"'))]
    page = await node.store.read("orders")
    assert (page.publications, page.position.offset) == ([], 0)
    after = await node.broker.publish_to_stream("orders", Publication(data=b"1"), KEEP, node.store)
    assert after.offset == 1


async def test_publishing_in_a_transaction_refuses_what_cannot_work(
    nodes: Callable[..., Any],
) -> None:
    node = await nodes(history=True)
    publication = Publication(data=b"1")
    with pytest.raises(ConfigurationError, match="asyncpg connection"):
        await node.broker.publish_in_transaction(object(), "room", publication, None, None)
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        with pytest.raises(ConfigurationError, match="transaction open"):
            await node.broker.publish_in_transaction(conn, "room", publication, None, None)
        async with conn.transaction():
            with pytest.raises(ConfigurationError, match="MemoryHistoryStore"):
                await node.broker.publish_in_transaction(
                    conn, "room", publication, KEEP, MemoryHistoryStore()
                )
    finally:
        await conn.close()
    other = await asyncpg.connect(f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/postgres")
    try:
        async with other.transaction():
            with pytest.raises(ConfigurationError, match="does not reach the database"):
                await node.broker.publish_in_transaction(other, "room", publication, None, None)
    finally:
        await other.close()


async def test_only_the_store_on_the_same_tables_adds_atomically(
    nodes: Callable[..., Any], prefix: str
) -> None:
    node = await nodes(history=True)
    assert node.broker.adds_atomically(node.store)
    assert not node.broker.adds_atomically(PostgresHistoryStore(POSTGRES_URL, prefix="other_"))
    assert not node.broker.adds_atomically(MemoryHistoryStore())


async def test_a_real_server_delivers_a_transactional_publication_only_after_commit(
    prefix: str,
) -> None:
    env = {
        "ROOMCAST_ENGINE__URL": f"{POSTGRES_URL}?prefix={prefix}",
        "OUTBOX_DATABASE_URL": POSTGRES_URL,
    }
    server = await asyncio.to_thread(start_app, "tests.support.postgres_outbox_app:app", env=env)
    try:
        async with (
            connect(f"{server.ws}/connection/websocket") as ws,
            httpx.AsyncClient(base_url=server.http, timeout=WAIT) as http,
        ):
            await ws.send(
                '{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"orders"}}\n'
                '{"id":3,"subscribe":{"channel":"plain:marker"}}'
            )
            replies: list[dict[str, Any]] = []
            while len(replies) < 3:
                replies += [json.loads(line) for line in str(await recv(ws)).split("\n")]
            assert all("error" not in reply for reply in replies), replies

            async def pushes_until_marker(text: str) -> list[tuple[str, Any]]:
                """Publish a marker and return the publications that arrived up to it."""
                (await http.post("/publish/plain:marker", params={"text": text})).raise_for_status()
                got: list[tuple[str, Any]] = []
                while not got or got[-1][0] != "plain:marker":
                    for line in str(await recv(ws)).split("\n"):
                        push = json.loads(line).get("push", {})
                        if "pub" in push:
                            got.append((push["channel"], push["pub"]))
                return got

            begun = await http.post("/tx/begin/orders", params={"text": "paid"})
            assert begun.json() == {"offset": 1}
            assert [c for c, _ in await pushes_until_marker("m1")] == ["plain:marker"]
            (await http.post("/tx/commit")).raise_for_status()
            got = await pushes_until_marker("m2")
            assert got[0] == ("orders", {"data": {"text": "paid"}, "offset": 1})

            (await http.post("/tx/begin/orders", params={"text": "refunded"})).raise_for_status()
            (await http.post("/tx/rollback")).raise_for_status()
            assert [c for c, _ in await pushes_until_marker("m3")] == ["plain:marker"]
            after = await http.post("/publish/orders", params={"text": "shipped"})
            assert after.json() == {"offset": 2}  # the rolled-back offset 2 was never kept
    finally:
        server.stop()


# --- the database's clock, and the schema --------------------------------------------------


async def test_stores_expire_on_the_database_clock(prefix: str) -> None:
    history = PostgresHistoryStore(POSTGRES_URL, prefix=prefix)
    presence = PostgresPresenceStore(POSTGRES_URL, prefix=prefix)
    await history.start()
    await presence.start()
    try:
        options = HistoryOptions(size=10, ttl=0.3, meta_ttl=0.6)
        first = await history.add("room", Publication(data=b"1"), options)
        await presence.add("room", ClientInfo("u", "short"), 0.3)
        await presence.add("room", ClientInfo("u", "long"), 5.0)
        await asyncio.sleep(0.4)
        page = await history.read("room", since=StreamPosition(0, first.epoch))
        assert (page.complete, page.position) == (False, StreamPosition(1, first.epoch))
        assert set(await presence.get("room")) == {"long"}
        assert await presence.stats("room") == PresenceStats(1, 1)
        await asyncio.sleep(0.3)
        again = await history.add("room", Publication(data=b"2"), options)
        assert (again.offset, again.epoch != first.epoch) == (1, True)
    finally:
        await history.close()
        await presence.close()


async def test_sweeps_delete_expired_rows_of_every_channel(prefix: str) -> None:
    history = PostgresHistoryStore(POSTGRES_URL, prefix=prefix, sweep_interval=0.1)
    presence = PostgresPresenceStore(POSTGRES_URL, prefix=prefix, sweep_interval=0.1)
    await history.start()
    await presence.start()
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await history.add("a", Publication(data=b"1"), HistoryOptions(10, 0.1, meta_ttl=0.1))
        await presence.add("a", ClientInfo("u", "c"), 0.1)
        tables = [f'"{prefix}{name}"' for name in ("history", "history_meta", "presence")]

        async def rows() -> int:
            return sum([await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables])

        assert await rows() == 3
        deadline = time.monotonic() + WAIT
        while await rows():
            assert time.monotonic() < deadline, "the sweeps left expired rows"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
        await history.close()
        await presence.close()


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
