"""The Redis engine on a Redis Cluster, beyond the contract suites (which run on it too): the
client a URL makes, a cluster that cannot be reached, and a broker whose partition's master
fails over (its sharded link finds the new owner, reports the gap, and delivers again).

The cluster is the run's own (``tests.support.redis_cluster``); a failover here leaves it
healthy, with another master for one slot range.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from roomcast.engines.base import HistoryOptions
from roomcast.engines.redis import RedisBroker, RedisHistoryStore
from roomcast.engines.redis.connection import cluster_for
from roomcast.engines.redis.slots import ChannelSlots
from roomcast.errors import EngineUnavailable
from roomcast.publication import ChannelEvent, Publication
from tests.engines.conftest import redis_prefix, until
from tests.support.engine_processes import free_port
from tests.support.redis_cluster import RedisClusterProcess


def test_the_url_gives_the_seeds_credentials_and_tls() -> None:
    client = cluster_for("rediss+cluster://ann:s%40cret@n1:7000,n2/0")
    try:
        seeds = sorted(client.nodes_manager.startup_nodes)
        assert seeds == ["n1:7000", "n2:6379"]
        kwargs = client.nodes_manager.connection_kwargs
        assert (kwargs["username"], kwargs["password"]) == ("ann", "s@cret")
        assert "SSL" in kwargs["connection_class"].__name__
    finally:
        asyncio.run(client.aclose())


async def test_an_unreachable_cluster_fails_promptly_naming_it(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis+cluster://127.0.0.1:{port}"
    began = time.monotonic()
    with pytest.raises(EngineUnavailable, match=f"cluster 127.0.0.1:{port}"):
        await asyncio.wait_for(RedisBroker(url).start(lambda channel, event: None), 10)
    with pytest.raises(EngineUnavailable, match=f"cluster 127.0.0.1:{port}"):
        await asyncio.wait_for(RedisHistoryStore(url).start(), 10)
    assert time.monotonic() - began < 8.0


async def test_a_failover_moves_the_link_to_the_new_master_and_reports_the_gap(
    redis_cluster: RedisClusterProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roomcast.engines.redis")
    url, prefix = redis_cluster.url(), redis_prefix(tmp_path)
    received: list[tuple[str, ChannelEvent]] = []
    gaps: list[bool] = []
    subscriber = RedisBroker(url, prefix=prefix, backoff=0.05, max_backoff=0.5)
    publisher = RedisBroker(url, prefix=prefix)
    store = RedisHistoryStore(url, prefix=prefix)
    await subscriber.start(
        lambda channel, event: received.append((channel, event)),
        lambda: gaps.append(subscriber.connected),
    )
    await publisher.start(lambda channel, event: None)
    await store.start()
    channel = "room:failover"
    slots = ChannelSlots(16)
    try:
        await subscriber.subscribe(channel)
        await publisher.publish(channel, Publication(data=b"before"))
        await until(lambda: len(received) == 1, "the publication before the failover")

        master = redis_cluster.master_of(slots.tag(slots.partition(channel)))
        promoted = await asyncio.to_thread(redis_cluster.failover, master)
        await until(lambda: gaps == [True], "the gap of the moved slot", 15.0)

        options = HistoryOptions(size=10, ttl=60)
        added = await publisher.publish_to_stream(
            channel, Publication(data=b"after"), options, store
        )
        await until(lambda: len(received) == 2, "a publication after the failover")
        assert [event for _, event in received] == [Publication(data=b"before"), added]
        assert redis_cluster.master_of(slots.tag(slots.partition(channel))) is promoted
        messages = [record.getMessage() for record in caplog.records]
        assert any("slot moved" in m for m in messages), messages
        assert any("reconnected" in m and "1 channel" in m for m in messages), messages
    finally:
        await subscriber.close()
        await publisher.close()
        await store.close()
        redis_cluster.delete(prefix)
