"""Where a channel's keys live: on a Redis Cluster, every key and the sharded pub/sub channel
of a channel in one hash slot, so that one Lua script may touch them all and publish.

A Redis Cluster runs a script only when all its keys hash to one slot, and publishes a
sharded message (``SPUBLISH``) only to subscribers of the slot's own shard. So on a cluster
each channel belongs to one of ``partitions`` partitions (:func:`shard_of`, the same in every
process), and every name of the channel carries its partition's hash tag ``{rc<i>.<k>}``:
the history stream and position, the idempotency records, the presence hash and set, and the
pub/sub channel the broker subscribes to (one ``SSUBSCRIBE`` connection per partition). The
tags are chosen so partition ``i``'s slot lies in the ``i``-th of ``partitions`` equal ranges
of the 16384 slots, which is how ``redis-cli --cluster create`` hands slots to masters: the
partitions spread evenly over them.

Outside a cluster a channel's keys keep their ``{channel}`` tag, as they always had. Both
choices of a channel (its instance of several, its partition of a cluster) are
:func:`shard_of`'s consistent hashing.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from redis.crc import key_slot

__all__ = ["CLUSTER_SLOTS", "UNCLUSTERED", "ChannelSlots", "partition_tag", "shard_of"]

CLUSTER_SLOTS: Final = 16384


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


@cache
def partition_tag(index: int, partitions: int) -> str:
    """The hash tag (without braces) of partition ``index`` of ``partitions``: the first
    ``rc<index>.<k>`` whose slot falls in the partition's range. The same in every process."""
    low = index * CLUSTER_SLOTS // partitions
    high = (index + 1) * CLUSTER_SLOTS // partitions
    for k in itertools.count():
        tag = f"rc{index}.{k}"
        if low <= key_slot(tag.encode()) < high:
            return tag
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class ChannelSlots:
    """How the names of a channel are tagged: ``partitions`` is 0 outside a cluster."""

    partitions: int = 0
    _tags: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tags = tuple(f"{{{partition_tag(i, self.partitions)}}}" for i in range(self.partitions))
        object.__setattr__(self, "_tags", tags)

    @property
    def clustered(self) -> bool:
        return self.partitions > 0

    def partition(self, channel: str) -> int:
        """The partition of ``channel`` (0 outside a cluster)."""
        return shard_of(channel, self.partitions) if self.clustered else 0

    def tag(self, index: int) -> str:
        """Partition ``index``'s hash tag, braces included (a cluster only)."""
        return self._tags[index]

    def of(self, channel: str) -> str:
        """What stands for ``channel`` in its key names: ``{channel}`` outside a cluster, its
        partition's tag and then the channel on one."""
        if not self.clustered:
            return f"{{{channel}}}"
        return self._tags[self.partition(channel)] + channel

    def pubsub(self, channel: str) -> str:
        """What follows the broker's key prefix in ``channel``'s pub/sub channel: the channel
        alone outside a cluster (as it always was), tagged on one."""
        return self.of(channel) if self.clustered else channel

    def channel_of(self, rest: bytes) -> bytes:
        """The channel of a pub/sub channel name (what follows the prefix); the inverse of
        :meth:`pubsub`. Tags hold no closing brace, so the first one ends the tag."""
        if not self.clustered or not rest.startswith(b"{"):
            return rest
        return rest[rest.index(b"}") + 1 :]


UNCLUSTERED: Final = ChannelSlots()
"""The names of a channel outside a cluster."""
