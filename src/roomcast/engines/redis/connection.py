"""How the Redis broker and stores reach Redis: a client or a connection pool per instance
(through Sentinel when the URL says so), the instance that holds a channel, the translation of
Redis' errors, and :class:`ShardedStore`, what both stores share.

The URL itself is :mod:`roomcast.engines.redis.url`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Self
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from roomcast.engines.base import EngineState
from roomcast.engines.redis.url import DEFAULT_PREFIX, SENTINEL_SCHEMES, RedisURL, where_of
from roomcast.errors import EngineUnavailable

__all__ = [
    "OPERATION_TIMEOUT",
    "ShardedStore",
    "client_for",
    "pool_for",
    "shard_of",
    "translate_errors",
]

OPERATION_TIMEOUT: Final = 2.0
"""Seconds a store's call into Redis may take, retry included, before it fails with
``EngineUnavailable``: the broker's own timeout, so every engine call fails alike."""


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
    timeouts: dict[str, Any] = {
        key: master[key] for key in ("socket_timeout", "socket_connect_timeout") if key in master
    }
    # redis-py types Sentinel from 6.x on; earlier releases leave it untyped.
    manager = Sentinel(sentinels, sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call,unused-ignore]
    return manager, service, master


def client_for(url: str, **options: Any) -> aioredis.Redis:
    """A client of the instance ``url`` names (one of ``RedisURL.urls``)."""
    if urlsplit(url).scheme in SENTINEL_SCHEMES:
        sentinel, service, master = _sentinel(url, options)
        client: aioredis.Redis = sentinel.master_for(service, **master)
        return client
    return aioredis.Redis.from_url(url, **options)


def pool_for(url: str, **options: Any) -> aioredis.ConnectionPool:
    """A connection pool of the instance ``url`` names, for dedicated connections."""
    if urlsplit(url).scheme in SENTINEL_SCHEMES:
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
def translate_errors(what: str, operation: str, where: str) -> Iterator[None]:
    """Turn a Redis or socket error into ``EngineUnavailable``, naming ``what`` failed to do
    ``operation`` and the instance (``where``, as :func:`~roomcast.engines.redis.url.where_of`
    gives it)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise EngineUnavailable(
            f"the {what} cannot {operation}: Redis at {where} failed: {type(exc).__name__}: {exc}"
        ) from exc


@dataclass(slots=True)
class _Shard:
    """One Redis instance of a store: where it is, its client and the scripts registered on
    it."""

    where: str
    """The instance, for messages (see ``where_of``)."""
    client: aioredis.Redis
    scripts: dict[str, Any] = field(default_factory=dict)


class ShardedStore:
    """What the Redis stores share: a client per instance (channels spread over them by
    :func:`shard_of`), their Lua scripts registered on each, the state, the clock, and error
    translation.

    ``clock``, when given, is "now" for every script (the contract tests inject one); else
    each script reads the Redis server's ``TIME``.
    """

    _what: str
    _scripts: ClassVar[dict[str, str]]
    """Script name -> Lua source, registered on every shard."""

    def __init__(
        self,
        url: str | Sequence[str] = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._urls = (url,) if isinstance(url, str) else tuple(url)
        if not self._urls:
            raise ValueError("a Redis store needs at least one URL")
        self._prefix = prefix
        self._clock = clock
        self._shards: list[_Shard] = []
        self._state = EngineState.NEW

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The store for ``redis://host:port[,host:port...]/db?prefix=...``, not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``RedisURL.parse``).
        """
        parsed = RedisURL.parse(url)
        return cls(parsed.urls, prefix=parsed.prefix, clock=None)

    def shares_redis_with(self, urls: Sequence[str]) -> bool:
        """Whether this store spreads channels over exactly the instances ``urls`` name, in
        that order (as a broker built from the same engine URL does)."""
        return self._urls == tuple(urls)

    async def start(self) -> None:
        if self._state is not EngineState.NEW:
            return
        shards: list[_Shard] = []
        try:
            for url in self._urls:
                client = client_for(
                    url,
                    socket_connect_timeout=OPERATION_TIMEOUT,
                    socket_timeout=OPERATION_TIMEOUT,
                    # An idle pooled connection is PINGed before use and replaced if the
                    # PING fails, so one from before a Redis restart is not handed out
                    # broken; a command that fails on a broken connection is sent once more
                    # (an add carries a unique ID, so a retried add is not added twice).
                    health_check_interval=1,
                    retry=Retry(NoBackoff(), 1),
                )
                shard = _Shard(where_of(url), client)
                shards.append(shard)
                with translate_errors(self._what, "connect", shard.where):
                    await client.ping()
        except EngineUnavailable:
            await self._release(shards)
            raise
        for shard in shards:
            shard.scripts = {
                name: shard.client.register_script(source) for name, source in self._scripts.items()
            }
        self._shards = shards
        self._state = EngineState.RUNNING

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        shards, self._shards = self._shards, []
        await self._release(shards)

    @staticmethod
    async def _release(shards: list[_Shard]) -> None:
        for shard in shards:
            with contextlib.suppress(RedisError, OSError):
                await shard.client.aclose()

    def _shard(self, channel: str) -> _Shard:
        """The running shard that keeps ``channel``'s keys."""
        if self._state is not EngineState.RUNNING or not self._shards:
            raise EngineUnavailable(f"the {self._what} is {self._state.value}, not running")
        return self._shards[shard_of(channel, len(self._shards))]

    def _now(self) -> str:
        """ARGV[1] of every script: the injected clock's reading, or empty for Redis' TIME."""
        return "" if self._clock is None else repr(self._clock())

    @contextlib.asynccontextmanager
    async def _operation(self, operation: str, shard: _Shard) -> AsyncIterator[None]:
        """One call into ``shard``: its errors translated, and the whole of it (a health-check
        PING, the command, its one retry) bounded by ``OPERATION_TIMEOUT``, so a Redis that
        went silent fails the caller as fast as the broker does."""
        with translate_errors(self._what, operation, shard.where):
            async with asyncio.timeout(OPERATION_TIMEOUT):
                yield
