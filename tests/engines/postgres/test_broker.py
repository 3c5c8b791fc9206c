"""What only the PostgreSQL broker does: events past NOTIFY's size limit, publishing into a
link that answers nothing, and publishing inside an application's transaction (directly and
through a real server).

Every wait is bounded. A delivery that must not happen is checked by publishing a marker
afterwards: notifications arrive in commit order, so once the marker is in, anything
committed before it would be too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from roomcast.engines.memory import MemoryHistoryStore
from roomcast.errors import ConfigurationError, EngineUnavailable
from roomcast.publication import ClientInfo, Join, Publication
from tests.engines.conftest import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_URL, WAIT, until
from tests.engines.postgres.conftest import KEEP, proxied
from tests.support.ci import require_module
from tests.support.server import start_app
from tests.support.tcp_proxy import Proxy
from tests.support.wsclient import connect, recv

asyncpg = require_module("asyncpg", hint="pip install 'roomcast[postgres]'")

from roomcast.engines.postgres import PostgresHistoryStore  # noqa: E402


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


async def test_publishing_into_a_black_hole_raises_within_the_timeout(
    nodes: Callable[..., Any], proxy: Proxy
) -> None:
    node = await nodes(proxied(proxy), timeout=0.5)
    proxy.frozen = True
    began = time.monotonic()
    with pytest.raises(EngineUnavailable):
        await asyncio.wait_for(node.broker.publish("room", Publication(data=b"1")), WAIT)
    assert time.monotonic() - began < 1.5


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
