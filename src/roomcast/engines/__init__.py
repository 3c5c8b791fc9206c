"""Engines: the broker and stores behind a Node, chosen by URL scheme, imported only when used."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

from roomcast.engines.base import Broker, EventHandler, HistoryStore, PresenceStore
from roomcast.errors import ConfigurationError

__all__ = [
    "Broker",
    "EventHandler",
    "HistoryStore",
    "PresenceStore",
    "create_broker",
    "create_history_store",
    "create_presence_store",
]

_REDIS_SCHEMES = ("redis", "rediss", "redis+sentinel", "rediss+sentinel")
_SHARED = "redis://host:port/db, postgresql://user@host:5432/db or nats://host:4222"
_POSTGRES = ("postgresql", "postgres")


_DRIVERS = {
    "redis": ("redis", "redis", "Redis"),
    "postgres": ("asyncpg", "asyncpg", "PostgreSQL"),
    "nats": ("nats", "nats-py", "NATS"),
}
"""Engine extra -> (its driver's module, the driver's package, the engine's name)."""


def _require_driver(extra: str) -> None:
    """Refuse an engine whose driver is not installed, naming the extra that installs it.

    Raises:
        ConfigurationError: the driver cannot be imported.
    """
    module, package, engines = _DRIVERS[extra]
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(
            f"the {engines} engines need the {package} package: pip install 'roomcast[{extra}]'"
        )


def create_broker(url: str) -> Broker:
    """The broker for ``url``'s scheme, not started.

    ``memory://`` (one process), or ``redis://host:port/db`` (``rediss://`` for TLS) with an
    optional ``prefix`` query parameter for its pub/sub channels (default ``roomcast:``): the
    broker to use when several processes (``--workers N``, several machines) serve one app;
    or ``postgresql://user@host:5432/db`` (``postgres://`` too) with optional ``prefix``,
    ``schema`` and ``listen_url`` (see :mod:`roomcast.engines.postgres`): LISTEN/NOTIFY, and
    publishing inside an application's own transaction; or ``nats://host:4222`` (several
    hosts separated by commas) with optional ``prefix`` (default ``roomcast``) and ``timeout``
    (seconds) query parameters: core NATS subjects (see :mod:`roomcast.engines.nats.connection`).

    Raises:
        ConfigurationError: the scheme names no broker this version provides, or the Redis
            or NATS URL is malformed.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from roomcast.engines.memory import MemoryBroker

        return MemoryBroker()
    if scheme in _REDIS_SCHEMES:
        _require_driver("redis")
        from roomcast.engines.redis import RedisBroker

        return RedisBroker.from_url(url)
    if scheme in _POSTGRES:
        _require_driver("postgres")
        from roomcast.engines.postgres.broker import PostgresBroker

        return PostgresBroker.from_url(url)
    if scheme == "nats":
        _require_driver("nats")
        from roomcast.engines.nats.broker import NatsBroker

        return NatsBroker.from_url(url)
    _refuse("broker", scheme, url, "memory://, " + _SHARED)


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
        ConfigurationError: the scheme names no history store this version provides, or the
            SQLite, Redis or NATS URL is malformed.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from roomcast.engines.memory import MemoryHistoryStore

        return MemoryHistoryStore()
    if scheme == "sqlite":
        from roomcast.engines.sqlite.store import SqliteHistoryStore

        path, synchronous, flush_interval = _parse_sqlite_url(url)
        return SqliteHistoryStore(path, synchronous=synchronous, flush_interval=flush_interval)
    if scheme in _REDIS_SCHEMES:
        _require_driver("redis")
        from roomcast.engines.redis import RedisHistoryStore

        return RedisHistoryStore.from_url(url)
    if scheme in _POSTGRES:
        _require_driver("postgres")
        from roomcast.engines.postgres.history import PostgresHistoryStore

        return PostgresHistoryStore.from_url(url)
    if scheme == "nats":
        _require_driver("nats")
        from roomcast.engines.nats.history import NatsHistoryStore

        return NatsHistoryStore.from_url(url)
    _refuse("history store", scheme, url, "memory://, sqlite:///path, " + _SHARED)


def create_presence_store(url: str) -> PresenceStore:
    """The presence store for ``url``'s scheme, not started.

    ``memory://``, or ``redis://host:port/db`` (``rediss://`` for TLS) with an optional
    ``prefix`` query parameter for its keys (default ``roomcast:``), or
    ``postgresql://user@host:5432/db`` with optional ``prefix`` and ``schema`` for its table,
    or ``nats://host:4222`` with optional ``prefix`` and ``timeout``: a JetStream KV bucket.

    Raises:
        ConfigurationError: the scheme names no presence store this version provides, or the
            NATS URL is malformed.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from roomcast.engines.memory import MemoryPresenceStore

        return MemoryPresenceStore()
    if scheme == "sqlite":
        raise ConfigurationError(
            f"presence cannot be kept in SQLite ({url!r}): entries live seconds and are "
            "rewritten constantly; use memory://, " + _SHARED
        )
    if scheme in _REDIS_SCHEMES:
        _require_driver("redis")
        from roomcast.engines.redis import RedisPresenceStore

        return RedisPresenceStore.from_url(url)
    if scheme in _POSTGRES:
        _require_driver("postgres")
        from roomcast.engines.postgres.presence import PostgresPresenceStore

        return PostgresPresenceStore.from_url(url)
    if scheme == "nats":
        _require_driver("nats")
        from roomcast.engines.nats.presence import NatsPresenceStore

        return NatsPresenceStore.from_url(url)
    _refuse("presence store", scheme, url, "memory://, " + _SHARED)


def _refuse(what: str, scheme: str, url: str, choices: str) -> NoReturn:
    raise ConfigurationError(f"unknown {what} URL scheme {scheme!r} in {url!r}; use {choices}")


def _parse_sqlite_url(url: str) -> tuple[Path, bool, float]:
    """``sqlite:///rel/path`` or ``sqlite:////abs/path`` into (path, synchronous, interval)."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise ConfigurationError(
            f"malformed SQLite URL {url!r}: use sqlite:///relative/path.sqlite3 or "
            "sqlite:////absolute/path.sqlite3"
        )
    path = Path(unquote(parts.path[1:]))
    synchronous, flush_interval = False, 0.005
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "synchronous" and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            synchronous = value.lower() in ("1", "true", "yes", "on")
        elif key == "flush_interval":
            try:
                flush_interval = float(value)
            except ValueError:
                flush_interval = -1.0
            if not 0 <= flush_interval <= 60:
                raise ConfigurationError(
                    f"SQLite URL {url!r}: flush_interval must be seconds between 0 and 60"
                )
        else:
            raise ConfigurationError(
                f"SQLite URL {url!r}: unknown parameter {key}={value!r} (known: "
                "synchronous=true|false, flush_interval=seconds)"
            )
    return path, synchronous, flush_interval
