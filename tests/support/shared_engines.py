"""The machine's shared engine servers, for tests that run ``roomcast serve`` processes on them:
an engine URL under a prefix of the test's own, a reachability check (``tests.support.ci``
decides: skip, or fail under ``CI=true``), and cleanup of what the test left behind."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from tests.support.ci import require_port

__all__ = ["SHARED_ENGINES", "SharedEngine", "unique_prefix"]

_CLEANUP_TIMEOUT = 30.0


def unique_prefix() -> str:
    """A prefix no other test run uses: engines keep their keys/tables/streams under it."""
    return f"rctest_{uuid.uuid4().hex[:10]}_"


@dataclass(frozen=True)
class SharedEngine:
    """One of the machine's engine servers."""

    name: str
    host: str
    port: int
    url_template: str
    """The engine URL, with ``{prefix}`` where the test's prefix goes."""

    def url(self, prefix: str) -> str:
        return self.url_template.format(host=self.host, port=self.port, prefix=prefix)

    @property
    def plain_url(self) -> str:
        """The server's URL without a prefix, for a test's own client of it."""
        return self.url_template.split("?", 1)[0].format(host=self.host, port=self.port)

    def require(self, what: str) -> None:
        """Go on only if the server accepts connections (see ``tests.support.ci``)."""
        require_port(self.name, self.host, self.port, hint=f"start it to run {what}")

    def cleanup(self, prefix: str) -> None:
        """Delete what engines wrote under ``prefix``; waits at most 30 s."""
        _CLEANUPS[self.name](self, prefix)


def _in_new_loop(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine on a loop of its own, in a thread, so that a caller whose thread
    already runs a loop (an async fixture's teardown) may call it too."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, make()).result(timeout=_CLEANUP_TIMEOUT)


def _delete_redis_keys(engine: SharedEngine, prefix: str) -> None:
    import redis

    client = redis.Redis(host=engine.host, port=engine.port, db=0, socket_timeout=5.0)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _delete_nats_streams(engine: SharedEngine, prefix: str) -> None:
    """The history stream and the presence bucket's stream (either may not exist)."""

    async def delete() -> None:
        import nats
        import nats.js.errors

        client = await nats.connect(engine.plain_url, connect_timeout=2, allow_reconnect=False)
        try:
            for stream in (f"{prefix}_history", f"{prefix}_once", f"KV_{prefix}_presence"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await client.jsm().delete_stream(stream)
        finally:
            await client.close()

    _in_new_loop(delete)


def _drop_postgres_schema(engine: SharedEngine, prefix: str) -> None:
    """The tables and functions the engine created under ``prefix``."""

    async def drop() -> None:
        import asyncpg

        from roomcast.engines.postgres.schema import Names, drop_schema

        conn = await asyncpg.connect(engine.plain_url, timeout=5.0)
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            await drop_schema(conn, Names(schema, prefix))
        finally:
            await conn.close()

    _in_new_loop(drop)


_CLEANUPS: dict[str, Callable[[SharedEngine, str], None]] = {
    "nats": _delete_nats_streams,
    "postgres": _drop_postgres_schema,
    "redis": _delete_redis_keys,
}

SHARED_ENGINES: dict[str, SharedEngine] = {
    "nats": SharedEngine("nats", "127.0.0.1", 4222, "nats://{host}:{port}?prefix={prefix}"),
    "postgres": SharedEngine(
        "postgres", "127.0.0.1", 5432, "postgresql://postgres@{host}:{port}/test?prefix={prefix}"
    ),
    "redis": SharedEngine("redis", "127.0.0.1", 6379, "redis://{host}:{port}/0?prefix={prefix}"),
}
