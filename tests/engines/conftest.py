"""Fixtures that run one contract suite against every engine: a history store and a presence
store per engine, each driven by a fake clock where the engine lets a test inject one.

An engine joins the suites by adding a factory to ``HISTORY_ENGINES``, ``PRESENCE_ENGINES`` or
``BROKER_ENGINES``.

The Redis engines run against the server at 127.0.0.1:6379, each test under its own key prefix
(deleted afterwards). They take the fake clock too: Redis stores compare stored deadlines with
"now", which is Redis' own ``TIME`` unless a clock is injected.

The PostgreSQL engines run against database ``test`` at 127.0.0.1:5432 (user ``postgres``), each
test under its own table prefix (its tables and functions dropped afterwards), and take the fake
clock the same way.

The NATS engines run against the server at 127.0.0.1:4222 (JetStream enabled), each test under
its own prefix (its stream and bucket deleted afterwards), with the fake clock: they compare
stored deadlines with it.

A server that does not answer, or a driver that is not installed, is handed to
``tests.support.ci``, which decides: the test is skipped, or fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest

from roomcast.engines.base import Broker, HistoryStore, PresenceStore
from roomcast.engines.memory import MemoryBroker, MemoryHistoryStore, MemoryPresenceStore
from roomcast.engines.sqlite.store import SqliteHistoryStore
from tests.support.ci import missing, require_module, require_port

WAIT = 5.0
"""Seconds an engine test waits for what must happen, unless it says otherwise."""


async def until(predicate: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    """Return once ``predicate()`` holds; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


class FakeClock:
    """A clock that stands still until a test moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


HistoryFactory = Callable[[Path, FakeClock], HistoryStore]
PresenceFactory = Callable[[Path, FakeClock], PresenceStore]
BrokerFactory = Callable[[Path], Broker]
StreamFactory = Callable[[Path, FakeClock], tuple[Broker, HistoryStore]]

_T = TypeVar("_T")

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
_RUN = uuid.uuid4().hex[:12]


def redis_prefix(tmp: Path) -> str:
    """The key prefix of one test: unique per run (``_RUN``) and per test (its tmp_path)."""
    return f"roomcast-test:{_RUN}:{tmp.name}:"


def _redis_history(tmp: Path, clock: FakeClock) -> HistoryStore:
    from roomcast.engines.redis import RedisHistoryStore

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    return RedisHistoryStore(url, prefix=redis_prefix(tmp), clock=clock)


def _redis_presence(tmp: Path, clock: FakeClock) -> PresenceStore:
    from roomcast.engines.redis import RedisPresenceStore

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
    return RedisPresenceStore(url, prefix=redis_prefix(tmp), clock=clock)


def _redis_broker(tmp: Path) -> Broker:
    from roomcast.engines.redis import RedisBroker

    return RedisBroker(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", prefix=redis_prefix(tmp))


def _cluster_url() -> str:
    from tests.support.redis_cluster import shared_cluster

    return shared_cluster().url()


def _cluster_history(tmp: Path, clock: FakeClock) -> HistoryStore:
    from roomcast.engines.redis import RedisHistoryStore

    return RedisHistoryStore(_cluster_url(), prefix=redis_prefix(tmp), clock=clock)


def _cluster_presence(tmp: Path, clock: FakeClock) -> PresenceStore:
    from roomcast.engines.redis import RedisPresenceStore

    return RedisPresenceStore(_cluster_url(), prefix=redis_prefix(tmp), clock=clock)


def _cluster_broker(tmp: Path) -> Broker:
    from roomcast.engines.redis import RedisBroker

    return RedisBroker(_cluster_url(), prefix=redis_prefix(tmp))


def require_redis_cluster(engine: str) -> None:
    """Go on only if the driver is installed and the run's Redis Cluster formed (it is
    started on first use)."""
    from tests.support.redis_cluster import shared_cluster

    require_module("redis", hint="pip install 'roomcast[redis]'")
    shared_cluster()


def delete_cluster_keys(tmp: Path) -> None:
    from tests.support.redis_cluster import shared_cluster

    shared_cluster().delete(redis_prefix(tmp))


def require_redis(engine: str) -> None:
    """Go on only if the test Redis answers and its driver is installed."""
    require_module("redis", hint="pip install 'roomcast[redis]'")
    require_port(
        "Redis", REDIS_HOST, REDIS_PORT, hint=f"start one to run the {engine} engine's tests"
    )


def delete_redis_keys(tmp: Path) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    try:
        keys = list(client.scan_iter(match=redis_prefix(tmp) + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
POSTGRES_URL = f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"


def postgres_prefix(tmp: Path) -> str:
    """The table prefix of one test: unique per run and per test (its tmp_path), and a short
    lowercase identifier as PostgreSQL names want."""
    return f"rct_{hashlib.sha1(f'{_RUN}:{tmp}'.encode()).hexdigest()[:12]}_"


def _postgres_history(tmp: Path, clock: FakeClock) -> HistoryStore:
    from roomcast.engines.postgres.history import PostgresHistoryStore

    return PostgresHistoryStore(POSTGRES_URL, prefix=postgres_prefix(tmp), clock=clock)


def _postgres_presence(tmp: Path, clock: FakeClock) -> PresenceStore:
    from roomcast.engines.postgres.presence import PostgresPresenceStore

    return PostgresPresenceStore(POSTGRES_URL, prefix=postgres_prefix(tmp), clock=clock)


def _postgres_broker(tmp: Path) -> Broker:
    from roomcast.engines.postgres.broker import PostgresBroker

    return PostgresBroker(POSTGRES_URL, prefix=postgres_prefix(tmp))


def _in_new_loop(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion on a loop of its own (in a thread, so that it works
    whether or not the caller's thread runs one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result(timeout=30)


@cache
def _postgres_refusal() -> str | None:
    """Why the test database cannot be used although its port answers, or None."""

    async def check() -> str | None:
        import asyncpg

        try:
            conn = await asyncpg.connect(POSTGRES_URL, timeout=3.0)
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return f"PostgreSQL at {POSTGRES_URL} is unusable ({type(exc).__name__}: {exc})"
        await conn.close()
        return None

    return _in_new_loop(check)


def require_postgres(engine: str) -> None:
    """Go on only if the test database accepts connections and its driver is installed."""
    hint = f"start one to run the {engine} engine's tests"
    require_module("asyncpg", hint="pip install 'roomcast[postgres]'")
    require_port("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT, hint=hint)
    reason = _postgres_refusal()
    if reason is not None:
        missing(f"{reason}; {hint}")


def drop_postgres_tables(tmp: Path) -> None:
    """Drop the tables and functions the test whose tmp_path is given created."""
    drop_postgres_prefix(postgres_prefix(tmp))


def drop_postgres_prefix(prefix: str) -> None:
    """Drop the tables and functions created under ``prefix`` in the test database."""

    async def drop() -> None:
        import asyncpg

        from roomcast.engines.postgres.schema import Names, drop_schema

        conn = await asyncpg.connect(POSTGRES_URL, timeout=5.0)
        try:
            schema = await conn.fetchval("SELECT current_schema()")
            await drop_schema(conn, Names(schema, prefix))
        finally:
            await conn.close()

    _in_new_loop(drop)


NATS_HOST, NATS_PORT = "127.0.0.1", 4222
NATS_URL = f"nats://{NATS_HOST}:{NATS_PORT}"


def nats_prefix(tmp: Path) -> str:
    """The NATS prefix of one test: unique per run and per test (its tmp_path), made only of
    the characters a stream name and a subject token allow."""
    return f"rct_{hashlib.sha1(f'{_RUN}:{tmp}'.encode()).hexdigest()[:12]}"


def _nats_history(tmp: Path, clock: FakeClock) -> HistoryStore:
    from roomcast.engines.nats.history import NatsHistoryStore

    return NatsHistoryStore(NATS_URL, prefix=nats_prefix(tmp), clock=clock)


def _nats_presence(tmp: Path, clock: FakeClock) -> PresenceStore:
    from roomcast.engines.nats.presence import NatsPresenceStore

    return NatsPresenceStore(NATS_URL, prefix=nats_prefix(tmp), clock=clock)


def _nats_broker(tmp: Path) -> Broker:
    from roomcast.engines.nats.broker import NatsBroker

    return NatsBroker(NATS_URL, prefix=nats_prefix(tmp))


@cache
def _nats_refusal() -> str | None:
    """Why the test NATS cannot be used although its port answers (no JetStream), or None."""

    async def check() -> str | None:
        import nats
        import nats.errors

        try:
            client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            return f"NATS at {NATS_URL} is unusable ({type(exc).__name__}: {exc})"
        try:
            await client.jsm().account_info()
        except Exception as exc:
            return f"NATS at {NATS_URL} has no JetStream ({type(exc).__name__}: {exc})"
        finally:
            await client.close()
        return None

    return _in_new_loop(check)


def require_nats(engine: str) -> None:
    """Go on only if the test NATS answers with JetStream and its driver is installed."""
    hint = f"start nats-server -js to run the {engine} engine's tests"
    require_module("nats", hint="pip install 'roomcast[nats]'")
    require_port("NATS", NATS_HOST, NATS_PORT, hint=hint)
    reason = _nats_refusal()
    if reason is not None:
        missing(f"{reason}; {hint}")


def delete_nats_streams(tmp: Path) -> None:
    """Delete the history stream and the presence bucket the test whose tmp_path is given
    created (either may not exist)."""
    delete_nats_prefix(nats_prefix(tmp))


def delete_nats_prefix(prefix: str) -> None:
    """Delete the history stream and the presence bucket of engines under ``prefix``."""

    async def delete() -> None:
        import contextlib

        import nats
        import nats.js.errors

        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
        try:
            for stream in (f"{prefix}_history", f"{prefix}_once", f"KV_{prefix}_presence"):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await client.jsm().delete_stream(stream)
        finally:
            await client.close()

    _in_new_loop(delete)


HISTORY_ENGINES: dict[str, HistoryFactory] = {
    "memory": lambda tmp, clock: MemoryHistoryStore(clock=clock),
    "sqlite": lambda tmp, clock: SqliteHistoryStore(tmp / "history.sqlite3", clock=clock),
    "sqlite-synchronous": lambda tmp, clock: SqliteHistoryStore(
        tmp / "history.sqlite3", clock=clock, synchronous=True
    ),
    "redis": _redis_history,
    "redis-cluster": _cluster_history,
    "postgres": _postgres_history,
    "nats": _nats_history,
}

PRESENCE_ENGINES: dict[str, PresenceFactory] = {
    "memory": lambda tmp, clock: MemoryPresenceStore(clock=clock),
    "redis": _redis_presence,
    "redis-cluster": _cluster_presence,
    "postgres": _postgres_presence,
    "nats": _nats_presence,
}


BROKER_ENGINES: dict[str, BrokerFactory] = {
    "memory": lambda tmp: MemoryBroker(),
    "redis": _redis_broker,
    "redis-cluster": _cluster_broker,
    "postgres": _postgres_broker,
    "nats": _nats_broker,
}


STREAM_ENGINES: dict[str, StreamFactory] = {
    "redis": lambda tmp, clock: (_redis_broker(tmp), _redis_history(tmp, clock)),
    "redis-cluster": lambda tmp, clock: (_cluster_broker(tmp), _cluster_history(tmp, clock)),
    "postgres": lambda tmp, clock: (_postgres_broker(tmp), _postgres_history(tmp, clock)),
    "nats": lambda tmp, clock: (_nats_broker(tmp), _nats_history(tmp, clock)),
}
"""Engines whose broker adds to their history store and publishes in one step
(``Broker.adds_atomically``): a broker and a store built for one test share their channels."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(HISTORY_ENGINES))
def make_history_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[[], HistoryStore]]:
    """Builds an unstarted history store of the engine under test."""
    factory = HISTORY_ENGINES[request.param]
    yield from with_engine(request.param, tmp_path, lambda: factory(tmp_path, clock))


@pytest.fixture
async def history_store(
    make_history_store: Callable[[], HistoryStore],
) -> AsyncIterator[HistoryStore]:
    store = make_history_store()
    await store.start()
    yield store
    await store.close()


@pytest.fixture(params=sorted(PRESENCE_ENGINES))
def make_presence_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[[], PresenceStore]]:
    """Builds an unstarted presence store of the engine under test."""
    factory = PRESENCE_ENGINES[request.param]
    yield from with_engine(request.param, tmp_path, lambda: factory(tmp_path, clock))


@pytest.fixture
async def presence_store(
    make_presence_store: Callable[[], PresenceStore],
) -> AsyncIterator[PresenceStore]:
    store = make_presence_store()
    await store.start()
    yield store
    await store.close()


@pytest.fixture(params=sorted(BROKER_ENGINES))
def make_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Broker]]:
    """Builds an unstarted broker of the engine under test; brokers built by one test share
    their channels (one Redis key prefix per test)."""
    factory = BROKER_ENGINES[request.param]
    yield from with_engine(request.param, tmp_path, lambda: factory(tmp_path))


@dataclass(frozen=True)
class EngineService:
    """How the suites use one engine's server: check it answers, and clean up after a test."""

    require: Callable[[str], None]
    """Skip (or fail under CI=true) the test of the named engine when the server is down."""
    cleanup: Callable[[Path], None]
    """Delete what the test whose tmp_path is given left in the server."""


SERVICES: dict[str, EngineService] = {
    "redis": EngineService(require_redis, delete_redis_keys),
    "redis-cluster": EngineService(require_redis_cluster, delete_cluster_keys),
    "postgres": EngineService(require_postgres, drop_postgres_tables),
    "nats": EngineService(require_nats, delete_nats_streams),
}
"""Engines that need a server, by the engine's name, else by its prefix (``redis`` covers
``redis-*`` but ``redis-cluster``)."""


@pytest.fixture(params=sorted(STREAM_ENGINES))
def make_stream_engine(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[[], tuple[Broker, HistoryStore]]]:
    """Builds an unstarted (broker, history store) pair of one engine, sharing channels."""
    factory = STREAM_ENGINES[request.param]
    yield from with_engine(request.param, tmp_path, lambda: factory(tmp_path, clock))


def with_engine(engine: str, tmp: Path, make: Callable[[], _T]) -> Iterator[Callable[[], _T]]:
    """Yields ``make``; for an engine with a server, first checks the server and afterwards
    cleans up what the test left there."""
    service = SERVICES.get(engine, SERVICES.get(engine.split("-", 1)[0]))
    if service is None:
        yield make
        return
    service.require(engine)
    try:
        yield make
    finally:
        service.cleanup(tmp)
