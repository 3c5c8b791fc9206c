"""Presence in Redis: per channel, a hash of infos and a sorted set of their expiries, on the
instance :func:`shard_of` gives the channel (see the package doc for the keys)."""

from __future__ import annotations

from typing import ClassVar

from roomcast.engines.base import PresenceStats, PresenceStore
from roomcast.engines.codec import encoder, info_decoder, load_info, store_info
from roomcast.engines.redis import scripts
from roomcast.engines.redis.connection import ShardedStore
from roomcast.publication import ClientInfo

__all__ = ["RedisPresenceStore"]


class RedisPresenceStore(ShardedStore, PresenceStore):
    """Presence in Redis: per channel, a hash of infos and a sorted set of their expiries.

    ``get`` and ``stats`` drop the expired entries they meet, in the same script that reads the
    rest; each key expires by itself when its longest-lived entry would have.
    """

    _what = "Redis presence store"

    _scripts: ClassVar[dict[str, str]] = {"add": scripts.PRESENCE_ADD, "get": scripts.PRESENCE_GET}

    def _keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}presence.infos:{self._slots.of(channel)}",
            f"{self._prefix}presence.expiry:{self._slots.of(channel)}",
        ]

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        shard = self._shard(channel)
        args = [self._now(), repr(ttl), info.client, encoder.encode(store_info(info))]
        async with self._operation("add", shard):
            await shard.scripts["add"](keys=self._keys(channel), args=args)

    async def remove(self, channel: str, client: str) -> None:
        shard = self._shard(channel)
        infos, expiries = self._keys(channel)
        async with (
            self._operation("remove", shard),
            shard.client.pipeline(transaction=True) as pipe,
        ):
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
        async with self._operation("read", shard):
            flat = await shard.scripts["get"](keys=self._keys(channel), args=[self._now()])
        return [load_info(info_decoder.decode(value)) for value in flat[1::2]]
