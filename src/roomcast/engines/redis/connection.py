"""How the Redis broker and stores reach Redis: a client or a connection pool per instance
(through Sentinel when the URL says so, a cluster client for a Redis Cluster), the instance
that holds a channel, the translation of Redis' errors, and :class:`ShardedStore`, what both
stores share.

The URL itself is :mod:`roomcast.engines.redis.url`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Self
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from roomcast.engines.base import EngineState
from roomcast.engines.redis import scripts
from roomcast.engines.redis.slots import UNCLUSTERED, ChannelSlots, shard_of
from roomcast.engines.redis.url import (
    CLUSTER_PUBSUB_SHARDS,
    DEFAULT_PREFIX,
    SENTINEL_SCHEMES,
    RedisURL,
    is_cluster,
    where_of,
)
from roomcast.errors import EngineUnavailable

__all__ = [
    "OPERATION_TIMEOUT",
    "Client",
    "Connector",
    "ShardedStore",
    "client_for",
    "cluster_for",
    "pool_for",
    "reusing",
    "shard_of",
    "slot_owner",
    "translate_errors",
]

OPERATION_TIMEOUT: Final = 2.0
"""Seconds a store's call into Redis may take, retry included, before it fails with
``EngineUnavailable``: the broker's own timeout, so every engine call fails alike."""


Connector = Callable[[], Awaitable[AbstractConnection]]
"""Gives a pub/sub link a connected connection: at the start and on every reconnect."""


def reusing(conn: AbstractConnection) -> Connector:
    """A connector that connects ``conn`` again each time (one instance, one address)."""

    async def connect() -> AbstractConnection:
        await conn.connect()  # type: ignore[no-untyped-call]
        return conn

    return connect


def slot_owner(cluster: RedisCluster, key: bytes) -> Connector:
    """A connector to the master that owns ``key``'s slot, with the cluster client's
    connection options. Each call after the first reads the cluster's topology again first,
    so a reconnect after a failover or a migration reaches the new owner (a node that does
    not own the slot answers a subscribe with MOVED, and the link tries again)."""
    stale = False

    async def connect() -> AbstractConnection:
        nonlocal stale
        if stale:
            await cluster.nodes_manager.initialize()
        stale = True
        node = cluster.get_node_from_key(key.decode())
        if node is None:
            raise ConnectionError(f"no node of the cluster owns the slot of {key!r}")
        conn = node.connection_class(**node.connection_kwargs)
        await conn.connect()  # type: ignore[no-untyped-call]
        return conn

    return connect


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


Client = aioredis.Redis | RedisCluster
"""A client of one instance: a plain (or Sentinel-found) Redis, or a whole Redis Cluster."""


def cluster_for(url: str, **options: Any) -> RedisCluster:
    """The cluster client of a ``redis+cluster://`` URL (one of ``RedisURL.urls``): its hosts
    are the seeds, the rest of the cluster is discovered from them."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    seeds = []
    for address in hosts.split(","):
        host, _, port = address.rpartition(":")
        seeds.append(ClusterNode(host or address, int(port) if host and port else 6379))
    if credentials:
        user, _, password = credentials.rpartition(":")
        options["password"] = unquote(password)
        if user:
            options["username"] = unquote(user)
    if parts.scheme == "rediss+cluster":
        options["ssl"] = True
    return RedisCluster(startup_nodes=seeds, **options)


def client_for(url: str, **options: Any) -> Client:
    """A client of the instance ``url`` names (one of ``RedisURL.urls``)."""
    if is_cluster(url):
        return cluster_for(url, **options)
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


@contextlib.contextmanager
def translate_errors(what: str, operation: str, where: str) -> Iterator[None]:
    """Turn a Redis or socket error into ``EngineUnavailable``, naming ``what`` failed to do
    ``operation`` and the instance (``where``, as :func:`~roomcast.engines.redis.url.where_of`
    gives it)."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError) as exc:
        raise EngineUnavailable(
            f"the {what} cannot {operation}: Redis at {where} failed: {type(exc).__name__}: {exc}"
        ) from exc


@dataclass(slots=True)
class _Shard:
    """One Redis instance of a store: where it is, its client and the scripts registered on
    it."""

    where: str
    """The instance, for messages (see ``where_of``)."""
    client: Client
    scripts: dict[str, Any] = field(default_factory=dict)


class ShardedStore:
    """What the Redis stores share: a client per instance (channels spread over them by
    :func:`shard_of`), their Lua scripts registered on each, the state, the clock, and error
    translation.

    ``clock``, when given, is "now" for every script (the contract tests inject one); else
    each script reads the Redis server's ``TIME``. A Redis Cluster is one instance: a
    channel's keys carry the hash tag of its partition of ``pubsub_shards`` (see
    :mod:`.slots`), the broker's pub/sub channel of the channel included.
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
        pubsub_shards: int | None = None,
    ) -> None:
        self._urls = (url,) if isinstance(url, str) else tuple(url)
        if not self._urls:
            raise ValueError("a Redis store needs at least one URL")
        clustered = is_cluster(self._urls[0])
        if clustered and len(self._urls) > 1:
            raise ValueError("a Redis Cluster is one instance: give its URL alone")
        self._slots = ChannelSlots((pubsub_shards or CLUSTER_PUBSUB_SHARDS) if clustered else 0)
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
        return cls(
            parsed.urls, prefix=parsed.prefix, clock=None, pubsub_shards=parsed.pubsub_shards
        )

    def shares_redis_with(self, urls: Sequence[str], slots: ChannelSlots = UNCLUSTERED) -> bool:
        """Whether this store spreads channels over exactly the instances ``urls`` name, in
        that order, and over the same cluster partitions ``slots`` (as a broker built from the
        same engine URL does)."""
        return self._urls == tuple(urls) and self._slots == slots

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
        cluster = self._slots.clustered
        for shard in shards:
            shard.scripts = {
                name: shard.client.register_script(scripts.sharded(source) if cluster else source)
                for name, source in self._scripts.items()
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
            with contextlib.suppress(RedisError, RedisClusterException, OSError):
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
