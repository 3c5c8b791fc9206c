"""How the Redis engine reaches its instances: spread over several instances and pub/sub
connections (every channel lives on one instance, chosen the same way by every process, for its
keys and its pub/sub; adding an instance moves few channels; streams stay in order), and behind
Redis Sentinel (the master found through the Sentinels).

``redis-server`` processes of the test's own run on ephemeral ports
(``tests.support.engine_processes``' ``RedisProcess``, and a Sentinel); the machine's Redis is
not used. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.engines.base import HistoryOptions
from roomcast.publication import ChannelEvent, ClientInfo, Publication
from tests.support.ci import require_module
from tests.support.engine_processes import RedisProcess, require_engine

redis = require_module("redis", hint="pip install 'roomcast[redis]'")

from roomcast.engines.redis import RedisBroker, RedisHistoryStore  # noqa: E402
from roomcast.engines.redis.connection import shard_of  # noqa: E402

WAIT = 10.0
OPTIONS = HistoryOptions(size=100, ttl=300.0)
CHANNELS = [f"room:{n}" for n in range(40)]


@pytest.fixture(scope="module")
def instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    require_engine("redis")
    started = []
    try:
        for name in ("one", "two"):
            process = RedisProcess(tmp_path_factory.mktemp(f"redis-{name}"), persistent=False)
            process.start()
            started.append(process)
        yield started
    finally:
        for process in started:
            process.close()


def _url(instances: list[RedisProcess], query: str = "") -> str:
    hosts = ",".join(f"127.0.0.1:{process.port}" for process in instances)
    return f"redis://{hosts}/0{query}"


def test_adding_an_instance_moves_about_a_third_of_the_channels_to_it() -> None:
    names = [f"chat:{n}" for n in range(3000)]
    two = [shard_of(name, 2) for name in names]
    three = [shard_of(name, 3) for name in names]
    moved = [(a, b) for a, b in zip(two, three, strict=True) if a != b]
    assert all(b == 2 for _, b in moved), "a channel moved between instances that stayed"
    assert 0.25 < len(moved) / len(names) < 0.42
    assert 0.45 < two.count(0) / len(names) < 0.55


async def test_each_channel_keeps_its_keys_on_one_instance_and_streams_stay_in_order(
    instances: list[RedisProcess],
) -> None:
    url = _url(instances, "?prefix=shards:&pubsub_shards=3")
    brokers = [create_broker(url), create_broker(url)]
    stores = [create_history_store(url), create_history_store(url)]
    presence = create_presence_store(url)
    received: dict[str, list[Publication]] = {channel: [] for channel in CHANNELS}

    def handle(channel: str, event: ChannelEvent) -> None:
        assert isinstance(event, Publication)
        received[channel].append(event)

    await brokers[0].start(handle)
    await brokers[1].start(lambda channel, event: None)
    for store in stores:
        await store.start()
    await presence.start()
    try:
        assert brokers[0].adds_atomically(stores[1])
        for channel in CHANNELS:
            await brokers[0].subscribe(channel)
            await presence.add(channel, ClientInfo("u", f"c-{channel}"), 60.0)

        async def publish(index: int, channel: str, n: int) -> None:
            await brokers[index].publish_to_stream(
                channel, Publication(data=f'"{n}"'.encode()), OPTIONS, stores[index]
            )

        await asyncio.gather(
            *(publish(n % 2, channel, n) for channel in CHANNELS for n in range(6))
        )
        deadline = time.monotonic() + WAIT
        while sum(len(got) for got in received.values()) < 6 * len(CHANNELS):
            assert time.monotonic() < deadline, "not every publication arrived"
            await asyncio.sleep(0.01)
        for channel in CHANNELS:
            assert [pub.offset for pub in received[channel]] == [1, 2, 3, 4, 5, 6]
            page = await stores[0].read(channel)
            assert [pub.offset for pub in page.publications] == [1, 2, 3, 4, 5, 6]
            assert (await presence.stats(channel)).num_clients == 1
    finally:
        for broker in brokers:
            await broker.close()
        for store in stores:
            await store.close()
        await presence.close()

    holders: dict[str, list[int]] = {channel: [] for channel in CHANNELS}
    for index, process in enumerate(instances):
        client = redis.Redis(host="127.0.0.1", port=process.port)
        try:
            for key in client.scan_iter(match="shards:*", count=1000):
                channel = key.decode().split("{", 1)[1].rstrip("}")
                if index not in holders[channel]:
                    holders[channel].append(index)
        finally:
            client.close()
    assert all(len(held) == 1 for held in holders.values()), holders
    assert {held[0] for held in holders.values()} == {0, 1}, "one instance kept every channel"
    assert all(holders[channel] == [shard_of(channel, 2)] for channel in CHANNELS), (
        "a channel's keys are not on the instance its name hashes to"
    )


async def test_a_store_on_other_instances_is_not_atomic_with_the_broker(
    instances: list[RedisProcess],
) -> None:
    broker = RedisBroker.from_url(_url(instances))
    assert not broker.adds_atomically(RedisHistoryStore.from_url(_url(instances[:1])))
    assert not broker.adds_atomically(RedisHistoryStore.from_url(_url(instances[::-1])))
    assert broker.adds_atomically(RedisHistoryStore.from_url(_url(instances)))


class SentinelProcess(RedisProcess):
    """``redis-server --sentinel`` watching one master as service ``roomcast``."""

    def __init__(self, scratch: Path, master: RedisProcess) -> None:
        super().__init__(scratch, persistent=False)
        self.master = master

    def _command(self) -> list[str]:
        config = self.scratch / "sentinel.conf"  # Sentinel rewrites it: a file of its own
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.scratch}\n"
            f"sentinel monitor roomcast 127.0.0.1 {self.master.port} 1\n"
        )
        return ["redis-server", str(config), "--sentinel"]


@pytest.fixture(scope="module")
def sentinel(
    instances: list[RedisProcess], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SentinelProcess]:
    process = SentinelProcess(tmp_path_factory.mktemp("sentinel"), instances[0])
    try:
        process.start()
        yield process
    finally:
        process.close()


async def test_the_engine_works_through_sentinel(
    sentinel: SentinelProcess, instances: list[RedisProcess]
) -> None:
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/roomcast/0?prefix=sentinel:"
    broker, store = create_broker(url), create_history_store(url)
    received: list[ChannelEvent] = []
    await broker.start(lambda channel, event: received.append(event))
    await store.start()
    try:
        assert broker.adds_atomically(store)
        await broker.subscribe("news")
        added = await broker.publish_to_stream("news", Publication(data=b'"hi"'), OPTIONS, store)
        deadline = time.monotonic() + WAIT
        while not received:
            assert time.monotonic() < deadline, "the publication never arrived"
            await asyncio.sleep(0.01)
        assert received == [added]
        assert broker.connected
    finally:
        await broker.close()
        await store.close()
    client = redis.Redis(host="127.0.0.1", port=instances[0].port)
    try:
        assert client.exists("sentinel:history.meta:{news}") == 1  # on the master it names
    finally:
        client.close()
