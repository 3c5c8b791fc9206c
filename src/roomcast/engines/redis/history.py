"""History in Redis: one stream and one position hash per channel, shared by every node.

See the package doc for the keys; a channel's keys live on the instance :func:`shard_of`
gives it (on a cluster, in the hash slot of its partition), the one the broker publishes that
channel's events on, so the add script can announce what it added.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import ClassVar, Final

from roomcast.engines.base import (
    IDEMPOTENCY_TTL,
    NO_GUARDS,
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PublishGuards,
    Suppressed,
    SuppressReason,
)
from roomcast.engines.codec import decode_stored, encode_stored
from roomcast.engines.redis import scripts
from roomcast.engines.redis.connection import ShardedStore
from roomcast.engines.redis.url import DEFAULT_PREFIX
from roomcast.engines.streams import READ_META_TTL, fetch_bounds, history_window, new_epoch
from roomcast.publication import Publication, StreamPosition

__all__ = ["RedisHistoryStore"]

_SUPPRESSED: Final = {1: SuppressReason.IDEMPOTENCY, 2: SuppressReason.VERSION}
"""What the add script's third answer means (0: added)."""


class RedisHistoryStore(ShardedStore, HistoryStore):
    """History in Redis: one stream and one position hash per channel, shared by every node.

    Semantics match the memory store: a publication expires ``ttl`` seconds after it was added
    (or when an older one still kept does), the stream keeps ``size`` at most, the position
    (epoch, top offset) expires ``meta_ttl`` after the last add, and a read of a channel
    without a position creates one. ``add`` and ``read`` are one script each, so concurrent
    adds from any number of processes get consecutive offsets, and a read's ``complete`` is
    decided on the same snapshot as the publications it returns. The guards are checked in
    the add script: the last version lives in the position hash, each idempotency key's result
    in a hash of its own beside the channel's keys, for ``idempotency_ttl`` seconds.
    """

    _what = "Redis history store"

    def __init__(
        self,
        url: str | Sequence[str] = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
        pubsub_shards: int | None = None,
    ) -> None:
        super().__init__(url, prefix=prefix, clock=clock, pubsub_shards=pubsub_shards)
        self._idempotency_ttl = idempotency_ttl

    _scripts: ClassVar[dict[str, str]] = {"add": scripts.ADD, "read": scripts.READ}

    def _keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}history.stream:{self._slots.of(channel)}",
            f"{self._prefix}history.meta:{self._slots.of(channel)}",
        ]

    async def add(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        return await self.add_and_announce(channel, publication, options, None, guards)

    async def add_and_announce(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        broker_key: bytes | None,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        """``add``, and when ``broker_key`` is given, publish the added publication on that
        pub/sub channel of the channel's instance in the same script (see the package doc;
        on a cluster, ``SPUBLISH`` on the sharded channel of the same slot).

        Raises:
            Suppressed: a guard stopped it.
        """
        shard = self._shard(channel)
        payload = encode_stored(publication)
        key = guards.idempotency_key
        args = [self._now(), new_epoch(), options.size, repr(options.ttl)]
        args += [repr(options.meta_ttl), payload, uuid.uuid4().hex]
        args += [repr(self._idempotency_ttl) if key else "", guards.version, guards.version_epoch]
        keys: list[str | bytes] = [*self._keys(channel), self._result_key(channel, key)]
        if broker_key is not None:
            keys.append(broker_key)
        async with self._operation("add", shard):
            epoch, offset, suppressed = await shard.scripts["add"](keys=keys, args=args)
        reason = _SUPPRESSED.get(int(suppressed))
        if reason is not None:
            raise Suppressed(reason, StreamPosition(int(offset), epoch.decode()))
        return publication.placed(int(offset), epoch.decode())

    def _result_key(self, channel: str, key: str) -> str:
        """The hash keeping the result of the publication made with ``key`` in ``channel``."""
        return f"{self._prefix}history.result:{self._slots.of(channel)}:{key}"

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
        low, high, limit = fetch_bounds(since_offset, reverse, limit)
        args = [
            self._now(),
            new_epoch(),
            repr(READ_META_TTL),
            "" if since is None else since.epoch,
            "0" if since is None else "1",
            "1" if reverse else "0",
            "-" if low is None else str(low),
            "+" if high is None else str(high),
            limit,
        ]
        async with self._operation("read", shard):
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
        async with self._operation("remove", shard):
            await shard.client.delete(*self._keys(channel))

    @staticmethod
    def _load(fields: list[bytes], offset: int, epoch: str) -> Publication:
        return decode_stored(dict(zip(fields[::2], fields[1::2], strict=True))[b"d"], offset, epoch)
