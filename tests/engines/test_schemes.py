"""The scheme table of ``roomcast.engines`` and the three factories that read it: every scheme
builds the classes it names, unstarted, for the roles its engine plays; a role it cannot play,
an unknown scheme and a missing driver are refused with a message that says what to do; and a
driver is imported only once a URL of its engine is used.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from roomcast.engines import (
    SCHEMES,
    Role,
    create_broker,
    create_history_store,
    create_presence_store,
)
from roomcast.engines.memory import MemoryBroker
from roomcast.errors import ConfigurationError
from tests.support.ci import require_module

FACTORIES: dict[Role, Callable[[str], object]] = {
    Role.BROKER: create_broker,
    Role.HISTORY: create_history_store,
    Role.PRESENCE: create_presence_store,
}

_MEMORY = (
    "roomcast.engines.memory.MemoryBroker",
    "roomcast.engines.memory.MemoryHistoryStore",
    "roomcast.engines.memory.MemoryPresenceStore",
)
_REDIS = (
    "roomcast.engines.redis.broker.RedisBroker",
    "roomcast.engines.redis.history.RedisHistoryStore",
    "roomcast.engines.redis.presence.RedisPresenceStore",
)
_POSTGRES = (
    "roomcast.engines.postgres.broker.PostgresBroker",
    "roomcast.engines.postgres.history.PostgresHistoryStore",
    "roomcast.engines.postgres.presence.PostgresPresenceStore",
)
_NATS = (
    "roomcast.engines.nats.broker.NatsBroker",
    "roomcast.engines.nats.history.NatsHistoryStore",
    "roomcast.engines.nats.presence.NatsPresenceStore",
)
EXPECTED: dict[str, tuple[str, tuple[str | None, str | None, str | None], str | None]] = {
    "memory": ("memory://", _MEMORY, None),
    "sqlite": (
        "sqlite:///history.sqlite3",
        (None, "roomcast.engines.sqlite.store.SqliteHistoryStore", None),
        None,
    ),
    "redis": ("redis://cache:6379/0", _REDIS, "redis"),
    "rediss": ("rediss://cache:6380/1", _REDIS, "redis"),
    "redis+sentinel": ("redis+sentinel://s1,s2/service/0", _REDIS, "redis"),
    "rediss+sentinel": ("rediss+sentinel://s1/service", _REDIS, "redis"),
    "redis+cluster": ("redis+cluster://n1:7000,n2:7001", _REDIS, "redis"),
    "rediss+cluster": ("rediss+cluster://n1:7000", _REDIS, "redis"),
    "postgresql": ("postgresql://user@db:5432/app", _POSTGRES, "asyncpg"),
    "postgres": ("postgres://user@db/app", _POSTGRES, "asyncpg"),
    "nats": ("nats://bus:4222", _NATS, "nats"),
}
"""Scheme -> (a URL of it, the class of each role in ``Role`` order or None, its driver)."""

SHARED = "redis://host:port/db, postgresql://user@host:5432/db or nats://host:4222"


def _qualified(built: object) -> str:
    return f"{type(built).__module__}.{type(built).__qualname__}"


def test_the_table_holds_exactly_the_expected_schemes() -> None:
    assert set(SCHEMES) == set(EXPECTED)
    for scheme, engine in SCHEMES.items():
        assert scheme in engine.schemes
        assert set(engine.classes).isdisjoint(engine.refusals), engine.name
        assert set(engine.classes) | set(engine.refusals) == set(Role), engine.name


@pytest.mark.parametrize("scheme", sorted(EXPECTED))
@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.name.lower())
def test_every_scheme_builds_the_class_it_names(scheme: str, role: Role) -> None:
    url, classes, driver = EXPECTED[scheme]
    expected = classes[list(Role).index(role)]
    if expected is None:
        with pytest.raises(ConfigurationError, match="use memory://"):
            FACTORIES[role](url)
        assert role not in SCHEMES[scheme].classes
        return
    if driver is not None:
        require_module(driver, hint="the test extra installs every driver")
    built = FACTORIES[role](url)
    assert _qualified(built) == expected
    assert SCHEMES[scheme].classes[role].replace(":", ".") == expected
    assert FACTORIES[role](url) is not built


def test_memory_scheme_gives_a_new_memory_broker() -> None:
    first, second = create_broker("memory://"), create_broker("memory://")
    assert isinstance(first, MemoryBroker)
    assert first is not second


def test_sqlite_has_no_broker_and_keeps_no_presence_and_says_why() -> None:
    url = "sqlite:///history.sqlite3"
    with pytest.raises(ConfigurationError) as broker:
        create_broker(url)
    assert str(broker.value) == (
        f"there is no SQLite broker ({url!r}): a SQLite file serves one process, and one "
        f"process needs no broker; use memory://, {SHARED}"
    )
    with pytest.raises(ConfigurationError) as presence:
        create_presence_store(url)
    assert str(presence.value) == (
        f"presence cannot be kept in SQLite ({url!r}): entries live seconds and are rewritten "
        f"constantly; use memory://, {SHARED}"
    )


@pytest.mark.parametrize(
    ("role", "choices"),
    [
        (Role.BROKER, f"memory://, {SHARED}"),
        (Role.HISTORY, f"memory://, sqlite:///path, {SHARED}"),
        (Role.PRESENCE, f"memory://, {SHARED}"),
    ],
)
def test_an_unknown_scheme_is_named_with_the_choices(role: Role, choices: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        FACTORIES[role]("bogus://host")
    assert str(refused.value) == (
        f"unknown {role.value} URL scheme 'bogus' in 'bogus://host'; use {choices}"
    )


@pytest.mark.parametrize("url", ["bogus://host", "no-scheme", ""])
def test_other_schemes_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError, match="use memory://"):
        create_broker(url)


def test_unknown_scheme_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'bogus'"):
        create_broker("bogus://host")


@pytest.mark.parametrize(
    ("url", "module", "message"),
    [
        (
            "redis://cache/0",
            "redis",
            "the Redis engines need the redis package: pip install 'roomcast[redis]'",
        ),
        (
            "postgresql://db/app",
            "asyncpg",
            "the PostgreSQL engines need the asyncpg package: pip install 'roomcast[postgres]'",
        ),
        (
            "nats://bus",
            "nats",
            "the NATS engines need the nats-py package: pip install 'roomcast[nats]'",
        ),
    ],
)
def test_a_missing_driver_names_the_extra_that_installs_it(
    url: str, module: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == module else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for factory in FACTORIES.values():
        with pytest.raises(ConfigurationError) as refused:
            factory(url)
        assert str(refused.value) == message


def test_a_driver_is_imported_only_once_its_scheme_is_used(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from roomcast.engines import create_broker, create_history_store, create_presence_store

        def drivers():
            return sorted(name for name in ("asyncpg", "nats", "redis") if name in sys.modules)

        create_broker("memory://")
        create_history_store("sqlite:///history.sqlite3")
        create_presence_store("memory://")
        print(drivers())
        create_history_store("redis://cache/0")
        print(drivers())
        create_broker("nats://bus")
        print(drivers())
        """
    )
    for driver in ("redis", "nats"):
        require_module(driver, hint="the test extra installs every driver")
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "['redis']", "['nats', 'redis']"]
    assert not (tmp_path / "history.sqlite3").exists()  # built, not started
