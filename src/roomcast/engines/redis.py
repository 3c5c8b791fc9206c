"""The Redis stores: history and presence shared by every process that reaches one Redis.

Keys, under a configurable prefix (default ``roomcast:``); ``{channel}`` is a hash tag, so a
channel's keys share a cluster slot and one script can touch them all::

    <prefix>history.stream:{channel}    stream: entry ID "<offset>-0", fields e (expires at), d
    <prefix>history.meta:{channel}      hash: epoch, top, expires (the position's expiry)
    <prefix>presence.infos:{channel}    hash: client -> ClientInfo (msgpack)
    <prefix>presence.expiry:{channel}   sorted set: client scored by its expiry

The broker uses no keys: it publishes on the pub/sub channel ``<prefix>broker:<channel>``.
When the broker and the history store share one Redis, the history script also publishes the
publication it added, as ``P<offset>:<epoch>:<stored publication>``, so streams reach every
node in offset order however many nodes publish into them.

Every write and every read that must see a consistent stream is one Lua script, so Redis runs
it atomically. Expiry is decided by comparing stored deadlines with "now", which is the Redis
server's ``TIME`` (one clock for every process) unless a ``clock`` is injected, as the contract
tests do; key TTLs (``PEXPIRE``) only reclaim memory once everything in a key is dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Final, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

from roomcast.engines.base import (
    Broker,
    EventHandler,
    GapHandler,
    HistoryOptions,
    HistoryPage,
    HistoryStore,
    PresenceStats,
    PresenceStore,
)
from roomcast.engines.memory import history_window, new_epoch
from roomcast.errors import ConfigurationError, EngineUnavailable
from roomcast.publication import ChannelEvent, ClientInfo, Join, Leave, Publication, StreamPosition

try:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import AbstractConnection
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ConfigurationError(
        "the Redis engines need the redis package: pip install 'roomcast[redis]'"
    ) from exc

__all__ = [
    "DEFAULT_PREFIX",
    "RedisBroker",
    "RedisHistoryStore",
    "RedisPresenceStore",
    "parse_redis_url",
]

logger = logging.getLogger("roomcast.engines.redis")

DEFAULT_PREFIX: Final = "roomcast:"

_READ_META_TTL: Final = HistoryOptions(size=0, ttl=0.0).meta_ttl
"""How long the position a read creates lives, as in the memory store."""

# Shared prologue: ARGV[1] is "now" in seconds, or empty to use the server's clock.
_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function deadline(seconds) return string.format('%.3f', now + seconds) end
local function ms(seconds) return math.max(1, math.ceil(seconds * 1000)) end
"""

# Returns the live position {epoch, top}; a missing or expired one is replaced by a new epoch
# (ARGV[2]) at offset 0, and the stream is dropped with it: its offsets belong to the old epoch.
_POSITION = """
local function position(meta_ttl_if_new)
  local meta = redis.call('HMGET', KEYS[2], 'epoch', 'top', 'expires')
  if meta[1] and meta[3] and tonumber(meta[3]) > now then
    return meta[1], tonumber(meta[2])
  end
  redis.call('DEL', KEYS[1])
  if meta_ttl_if_new then
    redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'top', 0, 'expires', deadline(meta_ttl_if_new))
    redis.call('PEXPIRE', KEYS[2], ms(meta_ttl_if_new))
  end
  return ARGV[2], 0
end
"""

# KEYS: stream, meta, and the broker's pub/sub channel to announce it on (optional).
# ARGV: now, new epoch, size, ttl, meta_ttl, payload. Returns {epoch, top}.
_ADD = (
    _NOW
    + _POSITION
    + """
local size, ttl, meta_ttl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local epoch, top = position(nil)
top = top + 1
redis.call('HSET', KEYS[2], 'epoch', epoch, 'top', top, 'expires', deadline(meta_ttl))
redis.call('PEXPIRE', KEYS[2], ms(meta_ttl))
if KEYS[3] then
  redis.call('PUBLISH', KEYS[3], 'P' .. top .. ':' .. epoch .. ':' .. ARGV[6])
end
if size <= 0 or ttl <= 0 then
  redis.call('DEL', KEYS[1])
  return {epoch, top}
end
-- Expiries never decrease along the stream, so expiry only ever trims a prefix (no gaps).
local expires = now + ttl
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if last then expires = math.max(expires, tonumber(last[2][2])) end
redis.call('XADD', KEYS[1], 'MAXLEN', size, top .. '-0',
           'e', string.format('%.3f', expires), 'd', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ms(expires - now))
return {epoch, top}
"""
)

# KEYS: stream, meta. ARGV: now, new epoch, meta_ttl for a new position, since epoch or
# empty, 1 when since is given, 1 for reverse, first ID, last ID, limit (-1 for all).
# Returns {epoch, top, first kept offset, entries in the requested range}.
_READ = (
    _NOW
    + _POSITION
    + """
local epoch, top = position(tonumber(ARGV[3]))
local first_kept = top + 1
local cursor = '-'
while true do
  local batch = redis.call('XRANGE', KEYS[1], cursor, '+', 'COUNT', 64)
  local found = false
  for _, entry in ipairs(batch) do
    if tonumber(entry[2][2]) > now then
      first_kept = tonumber((string.match(entry[1], '^%d+')))
      found = true
      break
    end
  end
  if found or #batch < 64 then break end
  cursor = '(' .. batch[#batch][1]
end
redis.call('XTRIM', KEYS[1], 'MINID', first_kept)
local entries = {}
local limit = tonumber(ARGV[9])
if limit ~= 0 and (ARGV[5] ~= '1' or ARGV[4] == epoch) then
  local args
  if ARGV[6] == '1' then
    args = {'XREVRANGE', KEYS[1], ARGV[8], ARGV[7]}
  else
    args = {'XRANGE', KEYS[1], ARGV[7], ARGV[8]}
  end
  if limit > 0 then
    table.insert(args, 'COUNT')
    table.insert(args, limit)
  end
  entries = redis.call(unpack(args))
end
return {epoch, top, first_kept, entries}
"""
)

# KEYS: infos, expiries. ARGV: now, ttl, client, payload.
_PRESENCE_ADD = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], deadline(ttl), ARGV[3])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ms(ttl) then redis.call('PEXPIRE', key, ms(ttl)) end
end
"""
)

# KEYS: infos, expiries. ARGV: now. Drops the expired entries, returns HGETALL of the rest.
_PRESENCE_GET = (
    _NOW
    + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for i = 1, #expired, 500 do
  redis.call('HDEL', KEYS[1], unpack(expired, i, math.min(i + 499, #expired)))
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
return redis.call('HGETALL', KEYS[1])
"""
)


class _StoredInfo(msgspec.Struct, array_like=True, frozen=True):
    user: str
    client: str
    conn_info: bytes
    chan_info: bytes


class _StoredPublication(msgspec.Struct, array_like=True, frozen=True):
    data: bytes
    info: _StoredInfo | None
    tags: dict[str, str]


_encoder: Final = msgspec.msgpack.Encoder()
_info_decoder: Final = msgspec.msgpack.Decoder(_StoredInfo)
_publication_decoder: Final = msgspec.msgpack.Decoder(_StoredPublication)


def _store_info(info: ClientInfo) -> _StoredInfo:
    return _StoredInfo(info.user, info.client, info.conn_info, info.chan_info)


def _load_info(stored: _StoredInfo) -> ClientInfo:
    return ClientInfo(stored.user, stored.client, stored.conn_info, stored.chan_info)


def parse_redis_url(url: str) -> tuple[str, str]:
    """``redis://host:port/db?prefix=...`` into (the URL for redis-py, the key prefix).

    Other query parameters are redis-py's own (``socket_timeout`` and the like).

    Raises:
        ConfigurationError: the URL is not a ``redis://`` or ``rediss://`` URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ConfigurationError(
            f"malformed Redis URL {url!r}: use redis://host:port/db, optionally ?prefix=..."
        )
    prefix = DEFAULT_PREFIX
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "prefix":
            prefix = value
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class _RedisStore:
    """What both stores share: the client, its state, the clock and error translation."""

    _what: str

    def __init__(self, url: str, *, prefix: str, clock: Callable[[], float] | None) -> None:
        parts = urlsplit(url)
        # Named in error messages; without the credentials the URL may carry.
        self._where = f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        self._url = url
        self._prefix = prefix
        self._clock = clock
        self._client: aioredis.Redis | None = None
        self._state = _State.NEW

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The store for ``redis://host:port/db?prefix=...``, not started."""
        redis_url, prefix = parse_redis_url(url)
        return cls(redis_url, prefix=prefix, clock=None)

    async def start(self) -> None:
        if self._state is not _State.NEW:
            return
        client = aioredis.Redis.from_url(self._url, socket_connect_timeout=5.0, socket_timeout=5.0)
        try:
            with self._translate("connect"):
                await client.ping()
        except EngineUnavailable:
            await client.aclose()
            raise
        self._client = client
        self._register(client)
        self._state = _State.RUNNING

    async def close(self) -> None:
        self._state = _State.CLOSED
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    def _register(self, client: aioredis.Redis) -> None:
        """Register the store's scripts with ``client``."""

    def _running(self) -> aioredis.Redis:
        if self._state is not _State.RUNNING or self._client is None:
            raise EngineUnavailable(f"the {self._what} is {self._state.value}, not running")
        return self._client

    def _now(self) -> str:
        """ARGV[1] of every script: the injected clock's reading, or empty for Redis' TIME."""
        return "" if self._clock is None else repr(self._clock())

    @contextlib.contextmanager
    def _translate(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (RedisError, OSError) as exc:
            raise EngineUnavailable(
                f"the {self._what} cannot {operation}: Redis at {self._where} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


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

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(url, prefix=prefix, clock=clock)
        self._add_script: Any = None
        self._read_script: Any = None

    def _register(self, client: aioredis.Redis) -> None:
        self._add_script = client.register_script(_ADD)
        self._read_script = client.register_script(_READ)

    def _keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}history.stream:{{{channel}}}",
            f"{self._prefix}history.meta:{{{channel}}}",
        ]

    async def add(
        self, channel: str, publication: Publication, options: HistoryOptions
    ) -> Publication:
        return await self.add_and_announce(channel, publication, options, None)

    def shares_redis_with(self, url: str) -> bool:
        """Whether this store talks to the Redis of ``url`` (as the broker's URL is given)."""
        return self._url == url

    async def add_and_announce(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        broker_key: bytes | None,
    ) -> Publication:
        """``add``, and when ``broker_key`` is given, publish the added publication on that
        pub/sub channel in the same script (see the module doc)."""
        self._running()
        info = publication.info
        payload = _encoder.encode(
            _StoredPublication(
                publication.data,
                None if info is None else _store_info(info),
                dict(publication.tags),
            )
        )
        args = [self._now(), new_epoch(), options.size, repr(options.ttl)]
        args += [repr(options.meta_ttl), payload]
        keys: list[str | bytes] = list(self._keys(channel))
        if broker_key is not None:
            keys.append(broker_key)
        with self._translate("add"):
            epoch, top = await self._add_script(keys=keys, args=args)
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
        self._running()
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
        with self._translate("read"):
            raw_epoch, top, first_kept, entries = await self._read_script(
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
        client = self._running()
        with self._translate("remove"):
            await client.delete(*self._keys(channel))

    @staticmethod
    def _load(fields: list[bytes], offset: int, epoch: str) -> Publication:
        stored = _publication_decoder.decode(
            dict(zip(fields[::2], fields[1::2], strict=True))[b"d"]
        )
        return Publication(
            data=stored.data,
            offset=offset,
            epoch=epoch,
            info=None if stored.info is None else _load_info(stored.info),
            tags=stored.tags,
        )


class RedisPresenceStore(_RedisStore, PresenceStore):
    """Presence in Redis: per channel, a hash of infos and a sorted set of their expiries.

    ``get`` and ``stats`` drop the expired entries they meet, in the same script that reads the
    rest; each key expires by itself when its longest-lived entry would have.
    """

    _what = "Redis presence store"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(url, prefix=prefix, clock=clock)
        self._add_script: Any = None
        self._get_script: Any = None

    def _register(self, client: aioredis.Redis) -> None:
        self._add_script = client.register_script(_PRESENCE_ADD)
        self._get_script = client.register_script(_PRESENCE_GET)

    def _keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}presence.infos:{{{channel}}}",
            f"{self._prefix}presence.expiry:{{{channel}}}",
        ]

    async def add(self, channel: str, info: ClientInfo, ttl: float) -> None:
        self._running()
        args = [self._now(), repr(ttl), info.client, _encoder.encode(_store_info(info))]
        with self._translate("add"):
            await self._add_script(keys=self._keys(channel), args=args)

    async def remove(self, channel: str, client: str) -> None:
        redis = self._running()
        infos, expiries = self._keys(channel)
        with self._translate("remove"):
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hdel(infos, client)
                pipe.zrem(expiries, client)
                await pipe.execute()

    async def get(self, channel: str) -> dict[str, ClientInfo]:
        return {info.client: info for info in await self._live(channel)}

    async def stats(self, channel: str) -> PresenceStats:
        infos = await self._live(channel)
        return PresenceStats(num_clients=len(infos), num_users=len({info.user for info in infos}))

    async def _live(self, channel: str) -> list[ClientInfo]:
        self._running()
        with self._translate("read"):
            flat = await self._get_script(keys=self._keys(channel), args=[self._now()])
        return [_load_info(_info_decoder.decode(value)) for value in flat[1::2]]


class _PubMessage(msgspec.Struct, array_like=True, frozen=True, tag="pub"):
    data: bytes
    offset: int
    epoch: str
    info: _StoredInfo | None
    tags: dict[str, str]


class _JoinMessage(msgspec.Struct, array_like=True, frozen=True, tag="join"):
    info: _StoredInfo


class _LeaveMessage(msgspec.Struct, array_like=True, frozen=True, tag="leave"):
    info: _StoredInfo


_event_decoder: Final = msgspec.msgpack.Decoder(_PubMessage | _JoinMessage | _LeaveMessage)


def _encode_event(event: ChannelEvent) -> bytes:
    if isinstance(event, Join):
        return _encoder.encode(_JoinMessage(_store_info(event.info)))
    if isinstance(event, Leave):
        return _encoder.encode(_LeaveMessage(_store_info(event.info)))
    info = event.info
    return _encoder.encode(
        _PubMessage(
            event.data,
            event.offset,
            event.epoch,
            None if info is None else _store_info(info),
            dict(event.tags),
        )
    )


def _decode_event(payload: bytes) -> ChannelEvent:
    if payload[:1] == b"P":  # published by the history script: P<offset>:<epoch>:<stored>
        offset, epoch, stored_bytes = payload[1:].split(b":", 2)
        stored = _publication_decoder.decode(stored_bytes)
        return Publication(
            data=stored.data,
            offset=int(offset),
            epoch=epoch.decode(),
            info=None if stored.info is None else _load_info(stored.info),
            tags=stored.tags,
        )
    message = _event_decoder.decode(payload)
    if isinstance(message, _JoinMessage):
        return Join(_load_info(message.info))
    if isinstance(message, _LeaveMessage):
        return Leave(_load_info(message.info))
    return Publication(
        data=message.data,
        offset=message.offset,
        epoch=message.epoch,
        info=None if message.info is None else _load_info(message.info),
        tags=message.tags,
    )


class _Link(enum.Enum):
    """The state of the broker's pub/sub connection while the broker runs."""

    UP = "up"
    DOWN = "down"


class RedisBroker(Broker):
    """Pub/sub between nodes through Redis ``PUBLISH``/``SUBSCRIBE``.

    Delivery guarantee: **at most once**, in order per publisher (Redis forwards one
    connection's publications in order). An event reaches the nodes whose subscription Redis
    holds when it publishes; events published while this node's pub/sub connection is down are
    lost for this node: the history store and the client recovery protocol exist for that.

    Each event is a msgpack message tagged by kind (``pub``, ``join``, ``leave``) published on
    ``<prefix>broker:<channel>``. Publishing uses a client with short socket timeouts, so a
    publish to an unreachable Redis raises ``EngineUnavailable`` within about ``timeout``
    seconds instead of hanging. Receiving uses one dedicated connection read by one task,
    which calls the handler synchronously for each message. When that connection breaks the
    task logs a warning, reconnects with exponential backoff (``backoff`` seconds, doubling up
    to ``max_backoff``), subscribes again to every channel it holds, and logs the recovery; it
    ends only with ``close()``.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 2.0,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        ping_interval: float = 10.0,
    ) -> None:
        parts = urlsplit(url)
        self._where = f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        self._url = url
        self._key_prefix = f"{prefix}broker:".encode()
        self._timeout = timeout
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._ping_interval = ping_interval
        self._state = _State.NEW
        self._link = _Link.DOWN
        self._handler: EventHandler | None = None
        self._on_gap: GapHandler | None = None
        self._client: aioredis.Redis | None = None
        self._pool: aioredis.ConnectionPool | None = None
        self._conn: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: set[str] = set()
        # Futures waiting for Redis to confirm a (un)subscribe, by (kind, key), oldest first.
        self._pending: dict[tuple[bytes, bytes], deque[asyncio.Future[None]]] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisBroker:
        """The broker for ``redis://host:port/db?prefix=...``, not started."""
        redis_url, prefix = parse_redis_url(url)
        return cls(redis_url, prefix=prefix)

    async def start(self, handler: EventHandler, on_gap: GapHandler | None = None) -> None:
        if self._state is _State.RUNNING:
            return
        options: dict[str, Any] = {
            "socket_connect_timeout": self._timeout,
            "socket_timeout": self._timeout,
            "retry": Retry(NoBackoff(), 0),
            # RESP2: pub/sub messages come back from read_response (RESP3 hands them to a
            # push handler instead).
            "protocol": 2,
        }
        client = aioredis.Redis.from_url(self._url, **options)
        pool = aioredis.ConnectionPool.from_url(self._url, **options)
        conn = pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            with self._translate("connect"):
                await client.ping()
                await conn.connect()
        except EngineUnavailable:
            await self._release(client, pool, conn)
            raise
        self._handler, self._on_gap = handler, on_gap
        self._client, self._pool, self._conn = client, pool, conn
        self._link = _Link.UP
        self._state = _State.RUNNING
        self._reader = asyncio.create_task(self._read(conn), name="roomcast-redis-broker")
        self._reader.add_done_callback(self._reader_ended)

    async def close(self) -> None:
        self._state = _State.CLOSED
        self._link = _Link.DOWN
        self._handler = self._on_gap = None
        self._channels.clear()
        self._fail_pending()
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        client, pool, conn = self._client, self._pool, self._conn
        self._client = self._pool = self._conn = None
        await self._release(client, pool, conn)

    @property
    def connected(self) -> bool:
        return self._state is _State.RUNNING and self._link is _Link.UP

    async def publish(self, channel: str, event: ChannelEvent) -> None:
        client = self._running()
        payload = _encode_event(event)
        with self._translate("publish"):
            await client.publish(self._key(channel), payload)

    def adds_atomically(self, store: HistoryStore) -> bool:
        """True for a ``RedisHistoryStore`` on this broker's Redis: its script publishes."""
        return isinstance(store, RedisHistoryStore) and store.shares_redis_with(self._url)

    async def publish_to_stream(
        self, channel: str, publication: Publication, options: HistoryOptions, store: HistoryStore
    ) -> Publication:
        if not self.adds_atomically(store):
            return await super().publish_to_stream(channel, publication, options, store)
        assert isinstance(store, RedisHistoryStore)
        self._running()
        return await store.add_and_announce(channel, publication, options, self._key(channel))

    async def subscribe(self, channel: str) -> None:
        """Subscribe and return once Redis confirmed it.

        Raises:
            EngineUnavailable: not running, the pub/sub connection is down, or Redis did not
                confirm within the timeout; the channel is not subscribed.
        """
        self._running()
        if self._link is not _Link.UP:
            raise EngineUnavailable(
                f"the Redis broker cannot subscribe: its connection to {self._where} is down"
            )
        self._channels.add(channel)
        try:
            await self._command(b"subscribe", channel)
        except EngineUnavailable:
            self._channels.discard(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel`` now; returns once Redis confirmed, or at once when the
        connection is down (the subscription went with it and is not renewed)."""
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        if self._state is not _State.RUNNING or self._link is not _Link.UP:
            return
        try:
            await self._command(b"unsubscribe", channel)
        except EngineUnavailable as exc:
            logger.debug("Redis broker: unsubscribe from %r unconfirmed: %s", channel, exc)

    async def _command(self, kind: bytes, channel: str) -> None:
        """Send SUBSCRIBE or UNSUBSCRIBE for ``channel`` and wait for Redis' confirmation."""
        conn = self._conn
        assert conn is not None
        key = self._key(channel)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._pending.setdefault((kind, key), deque())
        waiters.append(future)
        try:
            with self._translate(kind.decode()):
                await conn.send_command(kind.decode().upper(), key)
            await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError as exc:
            raise EngineUnavailable(
                f"the Redis broker cannot {kind.decode()}: Redis at {self._where} did not "
                f"confirm within {self._timeout} s"
            ) from exc
        finally:
            with contextlib.suppress(ValueError):
                waiters.remove(future)
            if not waiters and self._pending.get((kind, key)) is waiters:
                del self._pending[(kind, key)]

    async def _read(self, conn: AbstractConnection) -> None:
        """The reader task: deliver messages; on connection loss, reconnect and resubscribe."""
        while True:
            try:
                await self._read_until_lost(conn)
            except (RedisError, OSError) as exc:
                logger.warning(
                    "Redis broker lost its connection to %s (%s: %s); events published "
                    "meanwhile are lost for this node; reconnecting",
                    self._where,
                    type(exc).__name__,
                    exc,
                )
            self._link = _Link.DOWN
            self._fail_pending()
            await conn.disconnect(nowait=True)
            attempts = await self._reconnect(conn)
            self._link = _Link.UP
            logger.warning(
                "Redis broker reconnected to %s after %d attempt(s); resubscribed %d channel(s)",
                self._where,
                attempts,
                len(self._channels),
            )
            on_gap = self._on_gap
            if on_gap is not None:
                try:
                    on_gap()
                except Exception:
                    logger.exception("Redis broker: the gap handler failed")

    def _reader_ended(self, task: asyncio.Task[None]) -> None:
        """Never silent: a reader that ends other than by ``close()`` is logged as an error."""
        if not task.cancelled() and task.exception() is not None:
            self._link = _Link.DOWN
            logger.error(
                "Redis broker: the reader task failed; this node receives nothing more",
                exc_info=task.exception(),
            )

    async def _read_until_lost(self, conn: AbstractConnection) -> None:
        unanswered = False
        while True:
            response = await conn.read_response(timeout=self._ping_interval)
            if response is None:  # quiet for ping_interval: is the connection still alive?
                if unanswered:
                    raise ConnectionError(f"no answer to PING in {self._ping_interval} s")
                unanswered = True
                await conn.send_command("PING")
                continue
            unanswered = False
            self._dispatch(response)

    async def _reconnect(self, conn: AbstractConnection) -> int:
        """Connect again and resubscribe, retrying with capped exponential backoff."""
        delay, attempts = self._backoff, 0
        while True:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
            attempts += 1
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                keys = [self._key(channel) for channel in self._channels]
                if keys:
                    await conn.send_command("SUBSCRIBE", *keys)
                    await self._confirmed(conn, len(keys))
                return attempts
            except (RedisError, OSError) as exc:
                logger.debug("Redis broker: reconnect attempt %d failed: %s", attempts, exc)
                await conn.disconnect(nowait=True)

    async def _confirmed(self, conn: AbstractConnection, count: int) -> None:
        """Read until Redis confirmed ``count`` subscriptions, delivering messages between."""
        while count:
            response = await conn.read_response(timeout=self._timeout)
            if response is None:
                raise ConnectionError(f"no SUBSCRIBE confirmation in {self._timeout} s")
            if isinstance(response, list) and response and response[0] == b"subscribe":
                count -= 1
            else:
                self._dispatch(response)

    def _dispatch(self, response: Any) -> None:
        if not isinstance(response, list) or len(response) < 2:
            return
        kind, key = response[0], response[1]
        if kind == b"message" and len(response) == 3:
            channel = self._channel(key)
            handler = self._handler
            if channel is None or handler is None or channel not in self._channels:
                return
            try:
                event = _decode_event(response[2])
            except (msgspec.DecodeError, ValueError) as exc:
                logger.warning("Redis broker: dropped an undecodable message on %r: %s", key, exc)
                return
            try:
                handler(channel, event)
            except Exception:
                logger.exception("Redis broker: the handler failed on channel %r", channel)
        elif kind in (b"subscribe", b"unsubscribe"):
            waiters = self._pending.get((kind, key))
            if waiters:
                future = waiters.popleft()
                if not future.done():
                    future.set_result(None)

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for waiters in pending.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(
                        EngineUnavailable(f"the Redis broker lost its connection to {self._where}")
                    )

    def _running(self) -> aioredis.Redis:
        if self._state is not _State.RUNNING or self._client is None:
            raise EngineUnavailable(f"the Redis broker is {self._state.value}, not running")
        return self._client

    def _key(self, channel: str) -> bytes:
        return self._key_prefix + channel.encode()

    def _channel(self, key: bytes) -> str | None:
        if not key.startswith(self._key_prefix):
            return None
        return key[len(self._key_prefix) :].decode(errors="replace")

    @staticmethod
    async def _release(
        client: aioredis.Redis | None,
        pool: aioredis.ConnectionPool | None,
        conn: AbstractConnection | None,
    ) -> None:
        with contextlib.suppress(RedisError, OSError):
            if conn is not None:
                await conn.disconnect(nowait=True)
            if pool is not None:
                await pool.disconnect()
            if client is not None:
                await client.aclose()

    @contextlib.contextmanager
    def _translate(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (RedisError, OSError) as exc:
            raise EngineUnavailable(
                f"the Redis broker cannot {operation}: Redis at {self._where} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
