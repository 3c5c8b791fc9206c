"""The names an engine's data lives under, as ``README.md`` gives them, with the default
prefix and with one of the URL's ``prefix``: Redis keys and pub/sub channels start with the
prefix (``roomcast:`` by default); NATS has the stream ``<prefix>_history``, the key-value
bucket ``<prefix>_presence`` and subjects ``<prefix>.*`` (``roomcast`` by default);
PostgreSQL's tables start with the prefix (``roomcast_`` by default), in the schema
``?schema=`` names.

A node serves one client that subscribes (with presence) and publishes (with history), so
that every kind of name exists; then the test lists what the engine holds. Redis and NATS are
servers of the test's own (``tests.support.engine_processes``), so that everything in them is
the node's; PostgreSQL is the machine's, in a schema of the test's own. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.engine_processes import EngineProcess, NatsProcess, create_engine, require_engine
from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.shared_engines import SHARED_ENGINES
from tests.support.wsclient import TIMEOUT

NAMESPACE = {
    "name": "room",
    "history_size": 10,
    "history_ttl": "300s",
    "presence": True,
    "allow_subscribe_for_client": True,
}


@asynccontextmanager
async def node_in_use(engine_url: str, cwd: Path) -> AsyncIterator[RunningServer]:
    """A node on ``engine_url`` with a client subscribed to a channel it published to."""
    env = {"ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE])}
    args = ("--no-examples", "--insecure", "--engine", engine_url)
    server = await asyncio.to_thread(start_server, *args, env=env, cwd=cwd)
    try:
        async with protocol_client(server.ws) as client:
            channel = f"room:{uuid.uuid4().hex[:12]}"
            await client.subscribe(channel)
            await client.call("publish", channel=channel, data={"n": 1})
            assert (await client.push(channel, "pub"))["data"] == {"n": 1}
            yield server
    finally:
        await asyncio.to_thread(server.stop)
    assert "Traceback" not in server.log, server.log


def own_engine(kind: str, scratch: Path) -> Iterator[EngineProcess]:
    require_engine(kind)
    process = create_engine(kind, scratch, persistent=False)
    try:
        process.start()
        yield process
    finally:
        process.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EngineProcess]:
    (tmp_path / "redis").mkdir()
    yield from own_engine("redis", tmp_path / "redis")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EngineProcess]:
    (tmp_path / "nats").mkdir()
    yield from own_engine("nats", tmp_path / "nats")


@pytest.mark.parametrize(("query", "prefix"), [("", "roomcast:"), ("?prefix=app7:", "app7:")])
async def test_redis_keys_and_channels_start_with_the_prefix(
    redis_server: EngineProcess, tmp_path: Path, query: str, prefix: str
) -> None:
    import redis.asyncio

    async with node_in_use(redis_server.url + query, tmp_path):
        client = redis.asyncio.Redis.from_url(
            redis_server.url, socket_timeout=TIMEOUT, decode_responses=True
        )
        try:
            keys = [str(key) for key in await client.keys("*")]
            channels = [str(channel) for channel in await client.pubsub_channels()]
        finally:
            await client.aclose()
    assert keys, "the node stored nothing"
    assert channels, "the node subscribed to nothing"
    assert [name for name in keys + channels if not name.startswith(prefix)] == []


@pytest.mark.parametrize(("query", "prefix"), [("", "roomcast"), ("?prefix=app7", "app7")])
async def test_nats_stream_bucket_and_subjects_are_named_by_the_prefix(
    nats_server: NatsProcess, tmp_path: Path, query: str, prefix: str
) -> None:
    import nats

    async with node_in_use(nats_server.url + query, tmp_path):
        client = await nats.connect(nats_server.url, connect_timeout=TIMEOUT)
        try:
            streams = {
                str(info.config.name): info.config for info in await client.jsm().streams_info()
            }
        finally:
            await client.close()
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            monitor = f"http://127.0.0.1:{nats_server.monitor_port}/connz?subs=detail"
            connections = (await http.get(monitor)).json()["connections"]
    # A key-value bucket is the stream KV_<bucket>.
    assert sorted(streams) == sorted([f"{prefix}_history", f"KV_{prefix}_presence"])
    assert streams[f"{prefix}_history"].subjects == [f"{prefix}.history.>"]
    subjects = [
        sub["subject"]
        for connection in connections
        for sub in connection.get("subscriptions_list_detail", [])
        if not sub["subject"].startswith("_INBOX.")  # replies to the node's own requests
    ]
    assert subjects, "the node subscribed to nothing"
    assert [subject for subject in subjects if not subject.startswith(f"{prefix}.")] == []


@pytest.fixture
async def postgres_schema() -> AsyncIterator[str]:
    """A schema of the test's own in the machine's PostgreSQL, dropped afterwards."""
    postgres = SHARED_ENGINES["postgres"]
    postgres.require("the PostgreSQL naming tests")
    schema = f"rcnames_{uuid.uuid4().hex[:10]}"
    yield schema
    await _postgres(postgres.plain_url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def _postgres(url: str, query: str, *args: object) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=TIMEOUT)
    try:
        return [row[0] for row in await conn.fetch(query, *args)]
    finally:
        await conn.close()


@pytest.mark.parametrize(("query", "prefix"), [("", "roomcast_"), ("&prefix=app7_", "app7_")])
async def test_postgres_tables_start_with_the_prefix_in_the_named_schema(
    postgres_schema: str, tmp_path: Path, query: str, prefix: str
) -> None:
    database = SHARED_ENGINES["postgres"].plain_url
    async with node_in_use(f"{database}?schema={postgres_schema}{query}", tmp_path):
        pass
    listing = "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
    tables = await _postgres(database, listing, postgres_schema)
    assert tables, f"no table in schema {postgres_schema}"
    assert [table for table in tables if not table.startswith(prefix)] == []
