"""What the PostgreSQL broker's LISTEN connection does: fetch oversized events (and report
one whose row is gone), notice a link that broke or went silent, come back, and report the
gap; and LISTEN on ``listen_url`` while queries go to ``url``.

Every wait is bounded; links are broken with ``tests.support.tcp_proxy.Proxy``, never by
touching the machine's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from roomcast.errors import EngineUnavailable
from roomcast.publication import Publication
from tests.engines.conftest import POSTGRES_URL, WAIT, until
from tests.engines.postgres.conftest import proxied
from tests.support.ci import require_module
from tests.support.tcp_proxy import Proxy

asyncpg = require_module("asyncpg", hint="pip install 'roomcast[postgres]'")


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
