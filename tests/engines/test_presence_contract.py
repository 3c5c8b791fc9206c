"""The PresenceStore contract, run against every engine in ``conftest.PRESENCE_ENGINES``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roomcast.engines import create_presence_store
from roomcast.engines.base import PresenceStats, PresenceStore
from roomcast.engines.memory import MemoryPresenceStore
from roomcast.errors import ConfigurationError, EngineUnavailable
from roomcast.publication import ClientInfo
from tests.engines.conftest import FakeClock
from tests.support.ci import require_module

TTL = 60.0


def client(name: str, user: str = "alice", info: bytes = b"") -> ClientInfo:
    return ClientInfo(user=user, client=name, conn_info=info, chan_info=b'{"c":1}')


async def test_add_then_get(presence_store: PresenceStore) -> None:
    one, two = client("c1"), client("c2", user="bob", info=b'{"name":"Bob"}')
    await presence_store.add("room", one, TTL)
    await presence_store.add("room", two, TTL)
    assert await presence_store.get("room") == {"c1": one, "c2": two}
    assert await presence_store.get("elsewhere") == {}
    assert await presence_store.stats("elsewhere") == PresenceStats(0, 0)


async def test_add_again_refreshes_the_entry(presence_store: PresenceStore) -> None:
    await presence_store.add("room", client("c1", info=b"old"), TTL)
    newer = client("c1", info=b"new")
    await presence_store.add("room", newer, TTL)
    assert await presence_store.get("room") == {"c1": newer}
    assert await presence_store.stats("room") == PresenceStats(num_clients=1, num_users=1)


async def test_remove(presence_store: PresenceStore) -> None:
    await presence_store.add("room", client("c1"), TTL)
    await presence_store.add("room", client("c2"), TTL)
    await presence_store.remove("room", "c1")
    await presence_store.remove("room", "unknown")
    await presence_store.remove("nowhere", "c1")
    assert set(await presence_store.get("room")) == {"c2"}
    await presence_store.remove("room", "c2")
    assert await presence_store.get("room") == {}


async def test_stats_count_distinct_users(presence_store: PresenceStore) -> None:
    entries = [
        client("c1", user="alice"),
        client("c2", user="alice"),
        client("c3", user="bob"),
        client("c4", user=""),
        client("c5", user=""),
    ]
    for entry in entries:
        await presence_store.add("room", entry, TTL)
    assert await presence_store.stats("room") == PresenceStats(num_clients=5, num_users=3)


async def test_entries_expire_after_ttl(presence_store: PresenceStore, clock: FakeClock) -> None:
    await presence_store.add("room", client("c1"), 10.0)
    await presence_store.add("room", client("c2", user="bob"), 30.0)
    clock.advance(11)
    assert set(await presence_store.get("room")) == {"c2"}
    assert await presence_store.stats("room") == PresenceStats(num_clients=1, num_users=1)
    clock.advance(20)
    assert await presence_store.get("room") == {}
    assert await presence_store.stats("room") == PresenceStats(0, 0)


async def test_refresh_extends_the_expiry(presence_store: PresenceStore, clock: FakeClock) -> None:
    await presence_store.add("room", client("c1"), 10.0)
    clock.advance(8)
    await presence_store.add("room", client("c1"), 10.0)
    clock.advance(8)
    assert set(await presence_store.get("room")) == {"c1"}


async def test_channels_are_independent(presence_store: PresenceStore) -> None:
    await presence_store.add("a", client("c1"), TTL)
    await presence_store.add("b", client("c2"), TTL)
    await presence_store.remove("a", "c2")
    assert set(await presence_store.get("a")) == {"c1"}
    assert set(await presence_store.get("b")) == {"c2"}


async def test_not_started_or_closed_raises_engine_unavailable(
    make_presence_store: Callable[[], PresenceStore],
) -> None:
    store = make_presence_store()
    with pytest.raises(EngineUnavailable):
        await store.add("room", client("c1"), TTL)
    await store.start()
    await store.add("room", client("c1"), TTL)
    await store.close()
    await store.close()
    with pytest.raises(EngineUnavailable):
        await store.get("room")


def test_factory_memory_scheme() -> None:
    assert isinstance(create_presence_store("memory://"), MemoryPresenceStore)


def test_factory_redis_scheme_builds_without_connecting() -> None:
    require_module("redis", hint="pip install 'roomcast[redis]'")
    from roomcast.engines.redis import RedisPresenceStore

    assert isinstance(create_presence_store("redis://localhost/1"), RedisPresenceStore)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///presence.sqlite3", "use memory://"),
        ("bogus://x", "unknown presence store URL scheme 'bogus'"),
    ],
)
def test_factory_refuses_other_schemes(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_presence_store(url)
