"""Where a channel's names live on a Redis Cluster: every key and the sharded pub/sub channel
of a channel in one hash slot, its partition's; partitions spread evenly over the slots."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from roomcast.engines.base import HistoryOptions
from roomcast.engines.redis import RedisBroker, RedisHistoryStore, RedisPresenceStore
from roomcast.engines.redis.slots import CLUSTER_SLOTS, UNCLUSTERED, ChannelSlots, partition_tag
from roomcast.publication import ClientInfo, Publication
from tests.engines.conftest import redis_prefix, until
from tests.support.redis_cluster import RedisClusterProcess, shared_cluster


def _slot(name: str | bytes) -> int:
    return key_slot(name.encode() if isinstance(name, str) else name)


@pytest.mark.parametrize("partitions", [1, 3, 16, 64])
def test_each_partition_owns_a_slot_of_its_own_range(partitions: int) -> None:
    slots = [_slot(partition_tag(i, partitions)) for i in range(partitions)]
    for i, slot in enumerate(slots):
        assert i * CLUSTER_SLOTS // partitions <= slot < (i + 1) * CLUSTER_SLOTS // partitions
    assert len(set(slots)) == partitions


@pytest.mark.parametrize("channel", ["news", "chat:room#1", "a}b{c", "}x", "{}", "ü"])
def test_every_name_of_a_channel_is_in_its_partitions_slot(channel: str) -> None:
    slots = ChannelSlots(16)
    tag = slots.tag(slots.partition(channel))
    for name in (f"p:history.stream:{slots.of(channel)}", f"p:once:{slots.of(channel)}:k"):
        assert _slot(name) == _slot(tag.strip("{}"))
    pubsub = f"p:broker:{slots.pubsub(channel)}".encode()
    assert _slot(pubsub) == _slot(tag.strip("{}"))
    assert slots.channel_of(pubsub[len(b"p:broker:") :]) == channel.encode()


def test_outside_a_cluster_the_names_are_what_they_always_were() -> None:
    assert UNCLUSTERED.of("news") == "{news}"
    assert UNCLUSTERED.pubsub("news") == "news"
    assert UNCLUSTERED.channel_of(b"{x}news") == b"{x}news"


def test_partitions_spread_over_every_master() -> None:
    cluster = shared_cluster()
    slots = ChannelSlots(16)
    owners = {cluster.master_of(slots.tag(i)).port for i in range(16)}
    assert owners == {master.port for master in cluster.masters()}


async def test_a_channels_keys_are_written_on_the_master_of_its_slot(tmp_path: Path) -> None:
    cluster: RedisClusterProcess = shared_cluster()
    url, prefix = cluster.url(), redis_prefix(tmp_path)
    history = RedisHistoryStore(url, prefix=prefix)
    presence = RedisPresenceStore(url, prefix=prefix)
    broker = RedisBroker(url, prefix=prefix)
    await history.start()
    await presence.start()
    received: list[str] = []
    await broker.start(lambda channel, event: received.append(channel))
    try:
        channel = "room:keys"
        assert broker.adds_atomically(history)
        await broker.subscribe(channel)
        await broker.publish_to_stream(
            channel, Publication(data=b"{}"), HistoryOptions(size=10, ttl=60), history
        )
        await presence.add(channel, ClientInfo(client="c1", user="u1"), ttl=60)
        slots = ChannelSlots(16)
        master = cluster.master_of(slots.tag(slots.partition(channel)))
        client = redis.Redis(host="127.0.0.1", port=master.port)
        try:
            keys = sorted(k.decode() for k in client.scan_iter(match=prefix + "*"))
        finally:
            client.close()
        assert keys == sorted(
            f"{prefix}{kind}:{slots.of(channel)}"
            for kind in ("history.stream", "history.meta", "presence.infos", "presence.expiry")
        )
        await until(lambda: bool(received), "the publication the history script announced")
        assert received == [channel]
    finally:
        await broker.close()
        await presence.close()
        await history.close()
        cluster.delete(prefix)
