"""The Redis broker: events between nodes over Redis pub/sub, sharded by channel (on a Redis
Cluster, sharded pub/sub: ``SPUBLISH`` and ``SSUBSCRIBE`` in each channel's hash slot)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Final, Self, TypedDict

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from roomcast.engines.base import (
    IDEMPOTENCY_TTL,
    NO_GUARDS,
    Broker,
    ControlHandler,
    EngineState,
    EventHandler,
    GapHandler,
    HistoryOptions,
    HistoryStore,
    PublishGuards,
    Suppressed,
    SuppressReason,
)
from roomcast.engines.redis import scripts
from roomcast.engines.redis.codec import decode_event, encode_event
from roomcast.engines.redis.connection import (
    Client,
    client_for,
    cluster_for,
    pool_for,
    reusing,
    shard_of,
    slot_owner,
    translate_errors,
)
from roomcast.engines.redis.history import RedisHistoryStore
from roomcast.engines.redis.pubsub_link import LinkState, PubSubLink
from roomcast.engines.redis.slots import ChannelSlots
from roomcast.engines.redis.url import (
    CLUSTER_PUBSUB_SHARDS,
    DEFAULT_PREFIX,
    RedisURL,
    is_cluster,
    where_of,
)
from roomcast.errors import EngineUnavailable
from roomcast.publication import ChannelEvent, Publication, StreamPosition

__all__ = ["RedisBroker"]

logger = logging.getLogger("roomcast.engines.redis")

_CONNECTION_SALT: Final = 0x5BD1E995
"""Makes the choice of a connection within an instance independent of the instance's."""


class _LinkOptions(TypedDict):
    timeout: float
    backoff: float
    max_backoff: float
    ping_interval: float


class RedisBroker(Broker):
    """Pub/sub between nodes through Redis ``PUBLISH``/``SUBSCRIBE``.

    Delivery guarantee: **at most once**, in order per publisher (Redis forwards one
    connection's publications in order). An event reaches the nodes whose subscription Redis
    holds when it publishes; events published while this node's pub/sub connection is down are
    lost for this node: the history store and the client recovery protocol exist for that, and
    ``on_gap`` is called once a broken link is restored so that clients recover.

    Each event is a msgpack message tagged by kind (``pub``, ``join``, ``leave``) published on
    ``<prefix>broker:<channel>``. Control messages travel on ``<prefix>control`` of the first
    instance the URL lists, which every node subscribes to on its first pub/sub connection
    there (list the instances in the same order on every node). Channels are spread over the
    Redis instances the URL lists by consistent hashing (the instance that keeps the channel's
    history, so the history script can publish), and within an instance over
    ``pubsub_shards`` dedicated connections (:class:`PubSubLink`), each read by its own task.
    Publishing uses a client per instance with short socket timeouts, so a publish to an
    unreachable Redis raises ``EngineUnavailable`` within about ``timeout`` seconds instead
    of hanging.

    On a Redis Cluster (one ``redis+cluster://`` URL) channels are spread over
    ``pubsub_shards`` partitions instead (16 unless given), each one hash slot (see
    :mod:`.slots`): a channel's pub/sub channel is ``<prefix>broker:{<tag>}<channel>``,
    published with ``SPUBLISH`` (by the history script too, in the slot of the channel's
    keys), and each partition has one ``SSUBSCRIBE`` link to the master that owns its slot,
    which finds the slot's owner again after a failover and then reports the gap like any
    broken link. Control messages travel on ``<prefix>control:{<tag>}`` in partition 0.
    """

    def __init__(
        self,
        url: str | Sequence[str] = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        pubsub_shards: int | None = None,
        timeout: float = 2.0,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
        ping_interval: float = 10.0,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
    ) -> None:
        self._urls = (url,) if isinstance(url, str) else tuple(url)
        clustered = bool(self._urls) and is_cluster(self._urls[0])
        if pubsub_shards is None:
            pubsub_shards = CLUSTER_PUBSUB_SHARDS if clustered else 1
        if not self._urls or pubsub_shards < 1:
            raise ValueError("a Redis broker needs at least one URL and one pub/sub shard")
        if clustered and len(self._urls) > 1:
            raise ValueError("a Redis Cluster is one instance: give its URL alone")
        self._slots = ChannelSlots(pubsub_shards if clustered else 0)
        self._wheres = tuple(where_of(url) for url in self._urls)
        self._key_prefix = f"{prefix}broker:".encode()
        control = f"{prefix}control:{self._slots.tag(0)}" if clustered else f"{prefix}control"
        self._control_key = control.encode()
        self._once_prefix = f"{prefix}once:"
        self._idempotency_ttl = idempotency_ttl
        self._once_scripts: list[Any] = []
        self._pubsub_shards = pubsub_shards
        self._timeout = timeout
        self._link_options: _LinkOptions = {
            "timeout": timeout,
            "backoff": backoff,
            "max_backoff": max_backoff,
            "ping_interval": ping_interval,
        }
        self._state = EngineState.NEW
        self._handler: EventHandler | None = None
        self._on_gap: GapHandler | None = None
        self._on_control: ControlHandler | None = None
        self._clients: list[Client] = []
        self._pools: list[aioredis.ConnectionPool] = []
        self._links: list[PubSubLink] = []
        """``pubsub_shards`` links per instance, instance after instance."""

    @classmethod
    def from_url(cls, url: str) -> Self:
        """The broker for ``redis://host:port[,host:port...]/db?prefix=...&pubsub_shards=N``,
        not started.

        Raises:
            ConfigurationError: the URL is malformed (see ``RedisURL.parse``).
        """
        parsed = RedisURL.parse(url)
        return cls(parsed.urls, prefix=parsed.prefix, pubsub_shards=parsed.pubsub_shards)

    async def start(
        self,
        handler: EventHandler,
        on_gap: GapHandler | None = None,
        on_control: ControlHandler | None = None,
    ) -> None:
        if self._state is EngineState.RUNNING:
            return
        options: dict[str, Any] = {
            "socket_connect_timeout": self._timeout,
            "socket_timeout": self._timeout,
            "retry": Retry(NoBackoff(), 0),
            # RESP2: pub/sub messages come back from read_response (RESP3 hands them to a
            # push handler instead).
            "protocol": 2,
        }
        self._handler, self._on_gap, self._on_control = handler, on_gap, on_control
        try:
            if self._slots.clustered:
                await self._start_cluster(options)
            else:
                await self._start_instances(options)
            if on_control is not None:
                await self._links[0].subscribe(self._control_key)
        except EngineUnavailable:
            await self._release()
            raise
        once = scripts.sharded(scripts.ONCE) if self._slots.clustered else scripts.ONCE
        self._once_scripts = [client.register_script(once) for client in self._clients]
        self._state = EngineState.RUNNING

    async def _start_instances(self, options: dict[str, Any]) -> None:
        """A client per instance, then ``pubsub_shards`` links to each."""
        for url, where in zip(self._urls, self._wheres, strict=True):
            client = client_for(url, **options)
            self._clients.append(client)
            with translate_errors("Redis broker", "connect", where):
                await client.ping()
            pool = pool_for(url, **options)
            self._pools.append(pool)
            for _ in range(self._pubsub_shards):
                link = PubSubLink(
                    reusing(pool.make_connection()),  # type: ignore[no-untyped-call]
                    where,
                    self._deliver,
                    self._restored,
                    **self._link_options,
                )
                self._links.append(link)
                await link.open()

    async def _start_cluster(self, options: dict[str, Any]) -> None:
        """The cluster client, then one sharded link per partition to its slot's master."""
        client = cluster_for(self._urls[0], **options)
        self._clients.append(client)
        with translate_errors("Redis broker", "connect", self._wheres[0]):
            await client.ping()
        for partition in range(self._slots.partitions):
            key = self._key_prefix + self._slots.tag(partition).encode()
            link = PubSubLink(
                slot_owner(client, key),
                f"{self._wheres[0]} (slot of {self._slots.tag(partition)})",
                self._deliver,
                self._restored,
                **self._link_options,
                sharded=True,
            )
            self._links.append(link)
            await link.open()

    async def close(self) -> None:
        self._state = EngineState.CLOSED
        self._handler = self._on_gap = self._on_control = None
        await self._release()

    @property
    def connected(self) -> bool:
        return self._state is EngineState.RUNNING and all(
            link.state is LinkState.UP for link in self._links
        )

    async def publish(self, channel: str, event: ChannelEvent) -> None:
        client, where = self._client_of(channel)
        payload = encode_event(event)
        with translate_errors("Redis broker", "publish", where):
            await self._send(client, self._key(channel), payload)

    async def publish_once(self, channel: str, publication: Publication, key: str) -> None:
        """Publish unless ``key`` was seen: one script on the channel's instance sets the
        key's record (``SET NX``, for ``idempotency_ttl``) and publishes."""
        _, where = self._client_of(channel)  # raises when not running
        script = self._once_scripts[self._instance_of(channel)]
        record = f"{self._once_prefix}{self._slots.of(channel)}:{key}"
        ttl_ms = max(1, round(self._idempotency_ttl * 1000))
        with translate_errors("Redis broker", "publish", where):
            published = await script(
                keys=[record, self._key(channel)], args=[encode_event(publication), ttl_ms]
            )
        if not int(published):
            raise Suppressed(SuppressReason.IDEMPOTENCY, StreamPosition(0, ""))

    async def publish_control(self, payload: bytes) -> None:
        if self._state is not EngineState.RUNNING:
            raise EngineUnavailable(f"the Redis broker is {self._state.value}, not running")
        with translate_errors("Redis broker", "publish a control message", self._wheres[0]):
            await self._send(self._clients[0], self._control_key, payload)

    async def _send(self, client: Client, key: bytes, payload: bytes) -> None:
        """PUBLISH, or SPUBLISH to the key's slot on a cluster."""
        if isinstance(client, aioredis.Redis):
            await client.publish(key, payload)
        else:
            await client.spublish(key, payload)

    def adds_atomically(self, store: HistoryStore) -> bool:
        """True for a ``RedisHistoryStore`` on this broker's instances (and, on a cluster,
        its partitions): its script publishes."""
        return isinstance(store, RedisHistoryStore) and store.shares_redis_with(
            self._urls, self._slots
        )

    async def publish_to_stream(
        self,
        channel: str,
        publication: Publication,
        options: HistoryOptions,
        store: HistoryStore,
        guards: PublishGuards = NO_GUARDS,
    ) -> Publication:
        if not self.adds_atomically(store):
            return await super().publish_to_stream(channel, publication, options, store, guards)
        assert isinstance(store, RedisHistoryStore)
        self._client_of(channel)  # raises when not running
        return await store.add_and_announce(
            channel, publication, options, self._key(channel), guards
        )

    async def subscribe(self, channel: str) -> None:
        """Subscribe and return once Redis confirmed it.

        Raises:
            EngineUnavailable: not running, the channel's pub/sub connection is down, or Redis
                did not confirm within the timeout; the channel is not subscribed.
        """
        await self._link_of(channel).subscribe(self._key(channel))

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel`` now; returns once Redis confirmed, or at once when the
        connection is down."""
        if self._state is EngineState.RUNNING:
            await self._link_of(channel).unsubscribe(self._key(channel))

    def _deliver(self, key: bytes, payload: bytes) -> None:
        if key == self._control_key:
            self._deliver_control(payload)
            return
        handler = self._handler
        if handler is None or not key.startswith(self._key_prefix):
            return
        channel = self._slots.channel_of(key[len(self._key_prefix) :]).decode(errors="replace")
        try:
            event = decode_event(payload)
        except (msgspec.DecodeError, ValueError) as exc:
            logger.warning("Redis broker: dropped an undecodable message on %r: %s", key, exc)
            return
        try:
            handler(channel, event)
        except Exception:
            logger.exception("Redis broker: the handler failed on channel %r", channel)

    def _deliver_control(self, payload: bytes) -> None:
        on_control = self._on_control
        if on_control is None:
            return
        try:
            on_control(payload)
        except Exception:
            logger.exception("Redis broker: the control handler failed")

    def _restored(self) -> None:
        on_gap = self._on_gap
        if on_gap is not None:
            on_gap()

    def _instance_of(self, channel: str) -> int:
        return shard_of(channel, len(self._urls))  # 0 for a cluster, one instance

    def _client_of(self, channel: str) -> tuple[Client, str]:
        if self._state is not EngineState.RUNNING:
            raise EngineUnavailable(f"the Redis broker is {self._state.value}, not running")
        instance = self._instance_of(channel)
        return self._clients[instance], self._wheres[instance]

    def _link_of(self, channel: str) -> PubSubLink:
        if self._state is not EngineState.RUNNING:
            raise EngineUnavailable(f"the Redis broker is {self._state.value}, not running")
        if self._slots.clustered:
            return self._links[self._slots.partition(channel)]
        within = shard_of(channel, self._pubsub_shards, salt=_CONNECTION_SALT)
        return self._links[self._instance_of(channel) * self._pubsub_shards + within]

    def _key(self, channel: str) -> bytes:
        return self._key_prefix + self._slots.pubsub(channel).encode()

    async def _release(self) -> None:
        links, self._links = self._links, []
        pools, self._pools = self._pools, []
        clients, self._clients = self._clients, []
        for link in links:
            await link.close()
        with contextlib.suppress(RedisError, RedisClusterException, OSError):
            for pool in pools:
                await pool.disconnect()
            for client in clients:
                await client.aclose()
