"""The Redis stores: history and presence shared by every process that reaches the same Redis.

See the package doc for the keys. A channel's keys live on one instance (``shard_of`` over the
URL's instances), the one the broker publishes that channel's events on.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Self

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from roomcast.engines.base import (
    EngineState,
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PresenceStats,
    PresenceStore,
)
from roomcast.engines.codec import (
    decode_stored,
    encode_stored,
    encoder,
    info_decoder,
    load_info,
    store_info,
)
from roomcast.engines.memory import history_window, new_epoch
from roomcast.engines.redis import scripts
from roomcast.engines.redis.connection import (
    DEFAULT_PREFIX,
    client_for,
    parse_redis_url,
    shard_of,
    translate_errors,
)
from roomcast.errors import EngineUnavailable
from roomcast.publication import ClientInfo, Publication, StreamPosition

__all__ = ["RedisHistoryStore", "RedisPresenceStore"]

logger = logging.getLogger("roomcast.engines.redis")

_READ_META_TTL: Final = HistoryOptions(size=0, ttl=0.0).meta_ttl
"""How long the position a read creates lives, as in the memory store."""


@dataclass(slots=True)
class _Shard:
    """One Redis instance of a store: its URL, its client and the scripts registered on it."""

    url: str
    client: aioredis.Redis
    scripts: dict[str, Any] = field(default_factory=dict)


class _RedisStore:
    """What both stores share: the shards, their state, the clock and error translation."""

    _what: str
    _scripts: ClassVar[dict[str, str]]
    """Script name -> Lua source, registered on every shard."""

    def __init__(
        self, url: str | Sequence[str], *, prefix: str, clock: Callable[[], float] | None
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
        """The store for ``redis://host:port[,host:port...]/db?prefix=...``, not started."""
        target = parse_redis_url(url)
        return cls(target.urls, prefix=target.prefix, clock=None)

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
                    socket_connect_timeout=5.0,
                    socket_timeout=5.0,
                    # An idle pooled connection is PINGed before use and replaced if the
                    # PING fails, so one from before a Redis restart is not handed out
                    # broken; a command that fails on a broken connection is sent once more
                    # (an add carries a unique ID, so a retried add is not added twice).
                    health_check_interval=1,
                    retry=Retry(NoBackoff(), 1),
                )
                shards.append(_Shard(url, client))
                with translate_errors(self._what, "connect", url):
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

    def _translate(self, operation: str, shard: _Shard) -> contextlib.AbstractContextManager[None]:
        return translate_errors(self._what, operation, shard.url)


class RedisHistoryStore(_RedisStore, HistoryStore):
    """History in Redis: one stream and one position hash per channel, shared by every node.

    Semantics match the memory store: a publication expires ``ttl`` seconds after it was added
    (or when an older one still kept does), the stream keeps ``size`` at most, the position
    (epoch, top offset) expires ``meta_ttl`` after the last add, and a read of a channel
    without a position creates one. ``add`` and ``read`` are one script each, so concurrent
    adds from any number of processes get consecutive offsets, and a read's ``complete`` is
    decided on the same snapshot as the publications it returns.
    """

    _what = "Redis history store"

    _scripts: ClassVar[dict[str, str]] = {"add": scripts.ADD, "read": scripts.READ}

    def __init__(
        self,
        url: str | Sequence[str] = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(url, prefix=prefix, clock=clock)

    def _keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}history.stream:{{{channel}}}",
            f"{self._prefix}history.meta:{{{channel}}}",
        ]

    async def add(
        self, channel: str, publication: Publication, options: HistoryOptions
    ) -> Publication:
        return await self.add_and_announce(channel, publication, options, None)

    async def add_and_announce(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        broker_key: bytes | None,
    ) -> Publication:
        """``add``, and when ``broker_key`` is given, publish the added publication on that
        pub/sub channel of the channel's instance in the same script (see the package doc)."""
        shard = self._shard(channel)
        payload = encode_stored(publication)
        args = [self._now(), new_epoch(), options.size, repr(options.ttl)]
        args += [repr(options.meta_ttl), payload, uuid.uuid4().hex]
        keys: list[str | bytes] = list(self._keys(channel))
        if broker_key is not None:
            keys.append(broker_key)
        with self._translate("add", shard):
            epoch, top = await shard.scripts["add"](keys=keys, args=args)
        return Publication(
            data=publication.data,
            offset=int(top),
            epoch=epoch.decode(),
            info=publication.info,
            tags=dict(publication.tags),
        )

    async def read(
        self,
        channel: str,
        *,
        since: StreamPosition | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> HistoryPage:
        shard = self._shard(channel)
        since_offset = None if since is None else since.offset
        first_id, last_id = "-", "+"
        if since_offset is not None:
            if reverse:
                last_id = str(since_offset - 1)
                if since_offset - 1 < 1:
                    limit = 0  # nothing precedes offset 1
            else:
                first_id = str(max(since_offset, 0) + 1)
        args = [
            self._now(),
            new_epoch(),
            repr(_READ_META_TTL),
            "" if since is None else since.epoch,
            "0" if since is None else "1",
            "1" if reverse else "0",
            first_id,
            last_id,
            max(limit, -1),
        ]
        with self._translate("read", shard):
            raw_epoch, top, first_kept, entries = await shard.scripts["read"](
                keys=self._keys(channel), args=args
            )
        epoch = raw_epoch.decode()
        position = StreamPosition(int(top), epoch)
        if since is not None and since.epoch != epoch:
            return HistoryPage([], position, complete=False)
        complete, lo, hi = history_window(int(top), int(first_kept), since_offset, reverse)
        if not complete:
            return HistoryPage([], position, complete=False)
        publications = []
        for entry_id, fields in entries:
            offset = int(entry_id.split(b"-", 1)[0])
            if lo <= offset <= hi:
                publications.append(self._load(fields, offset, epoch))
        return HistoryPage(publications, position)

    async def remove(self, channel: str) -> None:
        shard = self._shard(channel)
        with self._translate("remove", shard):
            await shard.client.delete(*self._keys(channel))

    @staticmethod
    def _load(fields: list[bytes], offset: int, epoch: str) -> Publication:
        return decode_stored(dict(zip(fields[::2], fields[1::2], strict=True))[b"d"], offset, epoch)


class RedisPresenceStore(_RedisStore, PresenceStore):
    """Presence in Redis: per channel, a hash of infos and a sorted set of their expiries.

    ``get`` and ``stats`` drop the expired entries they meet, in the same script that reads the
    rest; each key expires by itself when its longest-lived entry would have.
    """

    _what = "Redis presence store"

    _scripts: ClassVar[dict[str, str]] = {"add": scripts.PRESENCE_ADD, "get": scripts.PRESENCE_GET}

    def __init__(
        self,
        url: str | Sequence[str] = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(url, prefix=prefix, clock=clock)

    def _keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}presence.infos:{{{channel}}}",
            f"{self._prefix}presence.expiry:{{{channel}}}",
        ]

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        shard = self._shard(channel)
        args = [self._now(), repr(ttl), info.client, encoder.encode(store_info(info))]
        with self._translate("add", shard):
            await shard.scripts["add"](keys=self._keys(channel), args=args)

    async def remove(self, channel: str, client: str) -> None:
        shard = self._shard(channel)
        infos, expiries = self._keys(channel)
        with self._translate("remove", shard):
            async with shard.client.pipeline(transaction=True) as pipe:
                pipe.hdel(infos, client)
                pipe.zrem(expiries, client)
                await pipe.execute()

    async def get(self, channel: str) -> dict[str, ClientInfo]:
        return {info.client: info for info in await self._live(channel)}

    async def stats(self, channel: str) -> PresenceStats:
        infos = await self._live(channel)
        return PresenceStats(num_clients=len(infos), num_users=len({info.user for info in infos}))

    async def _live(self, channel: str) -> list[ClientInfo]:
        shard = self._shard(channel)
        with self._translate("read", shard):
            flat = await shard.scripts["get"](keys=self._keys(channel), args=[self._now()])
        return [load_info(info_decoder.decode(value)) for value in flat[1::2]]
