"""Fixtures that run one contract suite against every engine: a history store and a presence
store per engine, each driven by a fake clock where the engine lets a test inject one.

An engine joins the suites by adding a factory to ``HISTORY_ENGINES`` or ``PRESENCE_ENGINES``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from roomcast.engines.base import HistoryStore, PresenceStore
from roomcast.engines.memory import MemoryHistoryStore, MemoryPresenceStore
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

HISTORY_ENGINES: dict[str, HistoryFactory] = {
    "memory": lambda tmp, clock: MemoryHistoryStore(clock=clock),
    "sqlite": lambda tmp, clock: SqliteHistoryStore(tmp / "history.sqlite3", clock=clock),
    "sqlite-synchronous": lambda tmp, clock: SqliteHistoryStore(
        tmp / "history.sqlite3", clock=clock, synchronous=True
    ),
}

PRESENCE_ENGINES: dict[str, PresenceFactory] = {
    "memory": lambda tmp, clock: MemoryPresenceStore(clock=clock),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(HISTORY_ENGINES))
def make_history_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Callable[[], HistoryStore]:
    """Builds an unstarted history store of the engine under test."""
    factory = HISTORY_ENGINES[request.param]
    return lambda: factory(tmp_path, clock)


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
) -> Callable[[], PresenceStore]:
    """Builds an unstarted presence store of the engine under test."""
    factory = PRESENCE_ENGINES[request.param]
    return lambda: factory(tmp_path, clock)


@pytest.fixture
async def presence_store(
    make_presence_store: Callable[[], PresenceStore],
) -> AsyncIterator[PresenceStore]:
    store = make_presence_store()
    await store.start()
    yield store
    await store.close()
