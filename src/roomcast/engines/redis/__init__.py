"""The Redis engine: a broker, a history store and a presence store shared by every process that
reaches the same Redis instances.

Keys, under a configurable prefix (default ``roomcast:``); ``{channel}`` is a hash tag, so a
channel's keys share a cluster slot and one script can touch them all::

    <prefix>history.stream:{channel}    stream: entry ID "<offset>-0", fields e (expires at), d
    <prefix>history.meta:{channel}      hash: epoch, top, expires (the position's expiry),
                                        version, vepoch (the last publication's version)
    <prefix>history.result:{channel}:K  hash: epoch, offset, expires of the publication made
                                        with idempotency key K
    <prefix>presence.infos:{channel}    hash: client -> ClientInfo (msgpack)
    <prefix>presence.expiry:{channel}   sorted set: client scored by its expiry
    <prefix>once:{channel}:K            string: idempotency key K was published (no history)

The broker publishes on the pub/sub channel ``<prefix>broker:<channel>``, and control messages
on ``<prefix>control``; its only keys are the ``once`` records of idempotent publishes into
channels without history, which expire by themselves.
When the broker and the history store share their Redis, the history script also publishes the
publication it added (see :mod:`.codec`), so streams reach every node in offset order however
many nodes publish into them.

An engine URL may list several instances (``redis://host:port,host:port/db``): each channel
lives on one of them, chosen by consistent hashing of its name, for its keys and its pub/sub.

A Redis Cluster (``redis+cluster://host:port,host:port``) is one instance whose channels are
spread over ``pubsub_shards`` partitions, each one hash slot: ``{channel}`` becomes
``{<tag>}<channel>`` in every key above, the pub/sub channel is
``<prefix>broker:{<tag>}<channel>``, published with ``SPUBLISH`` and held with
``SSUBSCRIBE``, and control messages travel on ``<prefix>control:{<tag of partition 0>}``
(see :mod:`.slots`).

Every write and every read that must see a consistent stream is one Lua script, so Redis runs
it atomically. Expiry is decided by comparing stored deadlines with "now", which is the Redis
server's ``TIME`` (one clock for every process) unless a ``clock`` is injected, as the contract
tests do; key TTLs (``PEXPIRE``) only reclaim memory once everything in a key is dead.

:mod:`.url` (the URL), :mod:`.connection` (clients, sharding, error translation, what the stores
share), :mod:`.slots` (a channel's hash slot on a cluster), :mod:`.codec` (what is published),
:mod:`.scripts` (the Lua), :mod:`.pubsub_link` (one pub/sub connection), :mod:`.broker`,
:mod:`.history` and :mod:`.presence`.
"""

from __future__ import annotations

from roomcast.engines.redis.broker import RedisBroker
from roomcast.engines.redis.history import RedisHistoryStore
from roomcast.engines.redis.presence import RedisPresenceStore
from roomcast.engines.redis.url import RedisURL

__all__ = ["RedisBroker", "RedisHistoryStore", "RedisPresenceStore", "RedisURL"]
