"""Engines: the broker and the stores behind a Node, chosen by URL scheme.

:data:`SCHEMES` is the one table of what a URL scheme names: its engine, the driver that
engine needs, where its broker, history store and presence store classes are, and why it plays
no part in a role it cannot play. The three factories read it and nothing else. An engine's
module, and so its driver, is imported only when a URL of its scheme is used.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

from roomcast.engines.base import Broker, EventHandler, HistoryStore, PresenceStore
from roomcast.errors import ConfigurationError

__all__ = [
    "SCHEMES",
    "Broker",
    "Driver",
    "Engine",
    "EventHandler",
    "HistoryStore",
    "PresenceStore",
    "Role",
    "create_broker",
    "create_history_store",
    "create_presence_store",
]


class Role(enum.Enum):
    """What an engine may be used for; the value is how messages name it."""

    BROKER = "broker"
    HISTORY = "history store"
    PRESENCE = "presence store"


@dataclass(frozen=True, slots=True)
class Driver:
    """The third-party package an engine talks to its server with."""

    module: str
    """What is imported (and looked for, before anything is)."""
    package: str
    """What pip installs."""
    extra: str
    """The roomcast extra that installs it: ``pip install 'roomcast[<extra>]'``."""


@dataclass(frozen=True, slots=True, eq=False)
class Engine:
    """One engine: the URL schemes that name it and what it provides (equal only to itself)."""

    name: str
    """How messages name it."""
    schemes: tuple[str, ...]
    example: str
    """A URL of it, shown where an error lists the choices."""
    classes: Mapping[Role, str]
    """The class of each role it plays, as ``module:Class``; each has ``from_url(url)``."""
    refusals: Mapping[Role, str] = field(default_factory=dict)
    """Why it plays none of the other roles, with ``{url}`` where the URL goes."""
    driver: Driver | None = None
    """None when the standard library suffices."""


_ENGINES: Final = (
    Engine(
        "memory",
        ("memory",),
        "memory://",
        {
            Role.BROKER: "roomcast.engines.memory:MemoryBroker",
            Role.HISTORY: "roomcast.engines.memory:MemoryHistoryStore",
            Role.PRESENCE: "roomcast.engines.memory:MemoryPresenceStore",
        },
    ),
    Engine(
        "SQLite",
        ("sqlite",),
        "sqlite:///path",
        {Role.HISTORY: "roomcast.engines.sqlite.store:SqliteHistoryStore"},
        refusals={
            Role.BROKER: "there is no SQLite broker ({url}): a SQLite file serves one process, "
            "and one process needs no broker",
            Role.PRESENCE: "presence cannot be kept in SQLite ({url}): entries live seconds and "
            "are rewritten constantly",
        },
    ),
    Engine(
        "Redis",
        ("redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"),
        "redis://host:port/db",
        {
            Role.BROKER: "roomcast.engines.redis.broker:RedisBroker",
            Role.HISTORY: "roomcast.engines.redis.history:RedisHistoryStore",
            Role.PRESENCE: "roomcast.engines.redis.presence:RedisPresenceStore",
        },
        driver=Driver("redis", "redis", "redis"),
    ),
    Engine(
        "PostgreSQL",
        ("postgresql", "postgres"),
        "postgresql://user@host:5432/db",
        {
            Role.BROKER: "roomcast.engines.postgres.broker:PostgresBroker",
            Role.HISTORY: "roomcast.engines.postgres.history:PostgresHistoryStore",
            Role.PRESENCE: "roomcast.engines.postgres.presence:PostgresPresenceStore",
        },
        driver=Driver("asyncpg", "asyncpg", "postgres"),
    ),
    Engine(
        "NATS",
        ("nats",),
        "nats://host:4222",
        {
            Role.BROKER: "roomcast.engines.nats.broker:NatsBroker",
            Role.HISTORY: "roomcast.engines.nats.history:NatsHistoryStore",
            Role.PRESENCE: "roomcast.engines.nats.presence:NatsPresenceStore",
        },
        driver=Driver("nats", "nats-py", "nats"),
    ),
)

SCHEMES: Final[Mapping[str, Engine]] = MappingProxyType(
    {scheme: engine for engine in _ENGINES for scheme in engine.schemes}
)
"""URL scheme -> the engine it names."""


def create_broker(url: str) -> Broker:
    """The broker for ``url``'s scheme, not started.

    ``memory://`` (one process), or ``redis://host:port/db`` (``rediss://`` for TLS) with an
    optional ``prefix`` query parameter for its pub/sub channels (default ``roomcast:``): the
    broker to use when several processes (``--workers N``, several machines) serve one app;
    or ``postgresql://user@host:5432/db`` (``postgres://`` too) with optional ``prefix``,
    ``schema`` and ``listen_url`` (see :mod:`roomcast.engines.postgres.url`): LISTEN/NOTIFY,
    and publishing inside an application's own transaction; or ``nats://host:4222`` (several
    hosts separated by commas) with optional ``prefix`` (default ``roomcast``) and ``timeout``
    (seconds) query parameters: core NATS subjects (see :mod:`roomcast.engines.nats.url`).

    Raises:
        ConfigurationError: the scheme names no broker this version provides, the engine's
            driver is not installed, or the URL is malformed.
    """
    broker = _build(Role.BROKER, url)
    assert isinstance(broker, Broker), broker
    return broker


def create_history_store(url: str) -> HistoryStore:
    """The history store for ``url``'s scheme, not started.

    ``memory://``, or ``sqlite:///relative/path.sqlite3`` (relative to the working directory)
    or ``sqlite:////absolute/path.sqlite3``, with the optional query parameters
    ``synchronous`` (``true``/``false``: ``add`` waits for the disk) and ``flush_interval``
    (seconds between commits), e.g. ``sqlite:///data/history.sqlite3?flush_interval=0.01``;
    or ``redis://host:port/db`` (``rediss://`` for TLS) with an optional ``prefix`` for keys;
    or ``postgresql://user@host:5432/db`` with optional ``prefix`` and ``schema`` for tables;
    or ``nats://host:4222`` with optional ``prefix`` and ``timeout``: a JetStream stream.

    Raises:
        ConfigurationError: the scheme names no history store this version provides, the
            engine's driver is not installed, or the URL is malformed.
    """
    store = _build(Role.HISTORY, url)
    assert isinstance(store, HistoryStore), store
    return store


def create_presence_store(url: str) -> PresenceStore:
    """The presence store for ``url``'s scheme, not started.

    ``memory://``, or ``redis://host:port/db`` (``rediss://`` for TLS) with an optional
    ``prefix`` query parameter for its keys (default ``roomcast:``), or
    ``postgresql://user@host:5432/db`` with optional ``prefix`` and ``schema`` for its table,
    or ``nats://host:4222`` with optional ``prefix`` and ``timeout``: a JetStream KV bucket.

    Raises:
        ConfigurationError: the scheme names no presence store this version provides, the
            engine's driver is not installed, or the URL is malformed.
    """
    store = _build(Role.PRESENCE, url)
    assert isinstance(store, PresenceStore), store
    return store


def _build(role: Role, url: str) -> object:
    """An unstarted instance of the class that :data:`SCHEMES` names for ``role`` and
    ``url``'s scheme, made by its ``from_url(url)``.

    Raises:
        ConfigurationError: no engine plays ``role`` under that scheme, its driver is not
            installed, or ``from_url`` refused the URL.
    """
    scheme = urlsplit(url).scheme
    engine = SCHEMES.get(scheme)
    path = None if engine is None else engine.classes.get(role)
    if engine is None or path is None:
        choices = _choices(role)
        if engine is not None and role in engine.refusals:
            reason = engine.refusals[role].format(url=repr(url))
            raise ConfigurationError(f"{reason}; use {choices}")
        raise ConfigurationError(
            f"unknown {role.value} URL scheme {scheme!r} in {url!r}; use {choices}"
        )
    driver = engine.driver
    if driver is not None and importlib.util.find_spec(driver.module) is None:
        raise ConfigurationError(
            f"the {engine.name} engines need the {driver.package} package: "
            f"pip install 'roomcast[{driver.extra}]'"
        )
    module, _, name = path.partition(":")
    built: object = getattr(importlib.import_module(module), name).from_url(url)
    return built


def _choices(role: Role) -> str:
    """The example URLs of every engine that plays ``role``: "a, b or c"."""
    examples = [engine.example for engine in _ENGINES if role in engine.classes]
    return f"{', '.join(examples[:-1])} or {examples[-1]}"
