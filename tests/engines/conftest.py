"""Fixtures that run one contract suite against every engine: a history store and a presence
store per engine, each driven by a fake clock where the engine lets a test inject one.

An engine joins the suites by adding a factory to ``HISTORY_ENGINES``, ``PRESENCE_ENGINES`` or
``BROKER_ENGINES``.

The Redis engines run against the server at 127.0.0.1:6379, each test under its own key prefix
(deleted afterwards); they are skipped when it is unreachable, except with ``CI=true``, where
that fails them. They take the fake clock too: Redis stores compare stored deadlines with "now",
which is Redis' own ``TIME`` unless a clock is injected.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

import pytest

from roomcast.engines.base import Broker, HistoryStore, PresenceStore
from roomcast.engines.memory import MemoryBroker, MemoryHistoryStore, MemoryPresenceStore
from roomcast.engines.sqlite import SqliteHistoryStore


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


@cache
def _redis_unreachable() -> str | None:
    """Why the test Redis cannot be used, or None when it answers."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1.0):
            return None
    except OSError as exc:
        return f"Redis at {REDIS_HOST}:{REDIS_PORT} is unreachable ({exc})"


def require_redis(engine: str) -> None:
    reason = _redis_unreachable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires it for the {engine} engine")
    pytest.skip(f"{reason}; start one to run the {engine} engine's contract tests")


def delete_redis_keys(tmp: Path) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    try:
        keys = list(client.scan_iter(match=redis_prefix(tmp) + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


HISTORY_ENGINES: dict[str, HistoryFactory] = {
    "memory": lambda tmp, clock: MemoryHistoryStore(clock=clock),
    "sqlite": lambda tmp, clock: SqliteHistoryStore(tmp / "history.sqlite3", clock=clock),
    "sqlite-synchronous": lambda tmp, clock: SqliteHistoryStore(
        tmp / "history.sqlite3", clock=clock, synchronous=True
    ),
    "redis": _redis_history,
}

PRESENCE_ENGINES: dict[str, PresenceFactory] = {
    "memory": lambda tmp, clock: MemoryPresenceStore(clock=clock),
    "redis": _redis_presence,
}


BROKER_ENGINES: dict[str, BrokerFactory] = {
    "memory": lambda tmp: MemoryBroker(),
    "redis": _redis_broker,
}


STREAM_ENGINES: dict[str, StreamFactory] = {
    "redis": lambda tmp, clock: (_redis_broker(tmp), _redis_history(tmp, clock)),
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
    yield from _with_engine(request.param, tmp_path, lambda: factory(tmp_path, clock))


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
    yield from _with_engine(request.param, tmp_path, lambda: factory(tmp_path, clock))


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
    yield from _with_engine(request.param, tmp_path, lambda: factory(tmp_path))


@dataclass(frozen=True)
class EngineService:
    """How the suites use one engine's server: check it answers, and clean up after a test."""

    require: Callable[[str], None]
    """Skip (or fail under CI=true) the test of the named engine when the server is down."""
    cleanup: Callable[[Path], None]
    """Delete what the test whose tmp_path is given left in the server."""


SERVICES: dict[str, EngineService] = {
    "redis": EngineService(require_redis, delete_redis_keys),
}
"""Engines that need a server, by the engine name's prefix (``redis`` covers ``redis-*``)."""


@pytest.fixture(params=sorted(STREAM_ENGINES))
def make_stream_engine(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Callable[[], tuple[Broker, HistoryStore]]]:
    """Builds an unstarted (broker, history store) pair of one engine, sharing channels."""
    factory = STREAM_ENGINES[request.param]
    yield from _with_engine(request.param, tmp_path, lambda: factory(tmp_path, clock))


def _with_engine(engine: str, tmp: Path, make: Callable[[], _T]) -> Iterator[Callable[[], _T]]:
    """Yields ``make``; for an engine with a server, first checks the server and afterwards
    cleans up what the test left there."""
    service = SERVICES.get(engine.split("-", 1)[0])
    if service is None:
        yield make
        return
    service.require(engine)
    try:
        yield make
    finally:
        service.cleanup(tmp)
