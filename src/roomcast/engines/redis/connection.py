"""What the Redis broker and stores share: the URL with its shards, the choice of a channel's
shard, the msgpack forms of what they store, and the translation of Redis errors."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import RedisError

from roomcast.errors import ConfigurationError, EngineUnavailable

__all__ = [
    "DEFAULT_PREFIX",
    "RedisTarget",
    "client_for",
    "parse_redis_url",
    "pool_for",
    "shard_of",
    "translate_errors",
    "where",
]

DEFAULT_PREFIX: Final = "roomcast:"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where a Redis engine keeps its data: one URL per Redis instance (shard), a key prefix,
    and how many pub/sub connections the broker opens to each instance."""

    urls: tuple[str, ...]
    prefix: str = DEFAULT_PREFIX
    pubsub_shards: int = 1


_SENTINEL_SCHEMES: Final = ("redis+sentinel", "rediss+sentinel")


def parse_redis_url(url: str) -> RedisTarget:
    """``redis://[user:password@]host:port[,host:port...]/db?prefix=...&pubsub_shards=N``, or
    ``redis+sentinel://[password@]host:port[,host:port...]/service[/db]?prefix=...``.

    With ``redis://`` (``rediss://`` for TLS), several ``host:port`` pairs name independent
    Redis instances that channels are spread over by consistent hashing (every node must list
    them in the same order). With ``redis+sentinel://`` they name the Sentinels that know the
    master of ``service``: one instance, found again after a failover. Other query parameters
    are redis-py's own (``socket_timeout`` and the like) and apply to every connection.

    Raises:
        ConfigurationError: the URL is not such a URL, names no host (or no Sentinel
            service), or has a malformed ``pubsub_shards``.
    """
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    addresses = [address for address in hosts.split(",") if address]
    sentinel = parts.scheme in _SENTINEL_SCHEMES
    if (
        parts.scheme not in ("redis", "rediss", *_SENTINEL_SCHEMES)
        or not addresses
        or (sentinel and not parts.path.strip("/"))
    ):
        raise ConfigurationError(
            f"malformed Redis URL {url!r}: use redis://host:port/db, optionally "
            "?prefix=..., several instances as redis://host:port,host:port/db, or Sentinels "
            "as redis+sentinel://host:port,host:port/service/db"
        )
    prefix, pubsub_shards = DEFAULT_PREFIX, 1
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            prefix = value
        elif key == "pubsub_shards":
            if not value.isdigit() or not 1 <= int(value) <= 64:
                raise ConfigurationError(
                    f"Redis URL {url!r}: pubsub_shards must be a whole number from 1 to 64"
                )
            pubsub_shards = int(value)
        else:
            rest.append((key, value))
    query = urlencode(rest)
    if sentinel and rest:
        raise ConfigurationError(
            f"Redis Sentinel URL {url!r}: only prefix and pubsub_shards are accepted as parameters"
        )
    if sentinel:
        return RedisTarget((urlunsplit(parts._replace(query=query)),), prefix, pubsub_shards)
    userinfo = f"{credentials}@" if credentials else ""
    urls = tuple(
        urlunsplit(parts._replace(netloc=userinfo + address, query=query)) for address in addresses
    )
    return RedisTarget(urls, prefix, pubsub_shards)


def where(url: str) -> str:
    """``host:port/db`` of ``url``, for messages: never the credentials a URL may carry."""
    parts = urlsplit(url)
    if parts.scheme in _SENTINEL_SCHEMES:
        return f"Sentinels {parts.netloc.rpartition('@')[2]}{parts.path}"
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def _sentinel(url: str, options: dict[str, Any]) -> tuple[Sentinel, str, dict[str, Any]]:
    """The Sentinel manager of a ``redis+sentinel://`` URL of one instance, the service name,
    and the options of connections to the master."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for address in hosts.split(","):
        host, _, port = address.rpartition(":")
        sentinels.append((host or address, int(port) if host and port else 26379))
    service, _, db = parts.path.strip("/").partition("/")
    master: dict[str, Any] = dict(options)
    master["db"] = int(db or 0)
    if credentials:
        master["password"] = unquote(credentials.rpartition(":")[2])
    if parts.scheme == "rediss+sentinel":
        master["ssl"] = True
    timeouts = {
        key: master[key] for key in ("socket_timeout", "socket_connect_timeout") if key in master
    }
    manager = Sentinel(sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    return manager, service, master


def client_for(url: str, **options: Any) -> aioredis.Redis:
    """A client of the instance ``url`` names (one of ``RedisTarget.urls``)."""
    if urlsplit(url).scheme in _SENTINEL_SCHEMES:
        sentinel, service, master = _sentinel(url, options)
        client: aioredis.Redis = sentinel.master_for(service, **master)
        return client
    return aioredis.Redis.from_url(url, **options)


def pool_for(url: str, **options: Any) -> aioredis.ConnectionPool:
    """A connection pool of the instance ``url`` names, for dedicated connections."""
    if urlsplit(url).scheme in _SENTINEL_SCHEMES:
        sentinel, service, master = _sentinel(url, options)
        return SentinelConnectionPool(service, sentinel, **master)  # type: ignore[no-untyped-call]
    return aioredis.ConnectionPool.from_url(url, **options)


def _channel_key(channel: str) -> int:
    return int.from_bytes(hashlib.blake2b(channel.encode(), digest_size=8).digest(), "big")


def _jump(key: int, buckets: int) -> int:
    """Jump consistent hashing (Lamping and Veach): adding a bucket moves only ~1/n of keys."""
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        candidate = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def shard_of(channel: str, shards: int, *, salt: int = 0) -> int:
    """The shard (0 <= shard < ``shards``) of ``channel``: the same in every process, and
    stable when shards are added; ``salt`` gives an independent choice (e.g. a connection
    within the chosen instance)."""
    if shards == 1:
        return 0
    return _jump(_channel_key(channel) ^ salt, shards)


@contextlib.contextmanager
def translate_errors(what: str, operation: str, url: str) -> Iterator[None]:
    """Turn a Redis or socket error into ``EngineUnavailable`` naming ``what`` and the server."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise EngineUnavailable(
            f"the {what} cannot {operation}: Redis at {where(url)} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
