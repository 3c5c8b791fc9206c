"""A Redis Cluster master fails over under load, or is killed, and every subscriber still gets
every publication exactly once, in order.

Two ``roomcast serve`` nodes, A and B, on the run's Redis Cluster
(``tests.support.redis_cluster``: three masters, three replicas). A publisher sends
``{"seq": n}`` for n in 0..1999 at 400 per second through node A's server API, each with an
idempotency key, and retries every failed attempt with the same key as a client would (it never
reads history to guess); three ``centrifuge-python`` clients subscribed with recovery on node B
record what the SDK hands them. After 600 publications the master that owns the channel's
hash slot goes:

- ``failover``: ``CLUSTER FAILOVER`` on its replica, which waits until it has every write the
  master took; the master then drops node B's sharded subscription of the slot. Publishing
  need not fail at all.
- ``kill``: SIGKILL; the cluster promotes the replica by itself after its node timeout (2 s),
  and until then publishing into the slot fails (error 100) and the publisher retries. On
  loopback the replica has every write the master acknowledged (Redis replicates
  asynchronously: over a network a crash may lose the last ones, see the README). The killed
  node is revived afterwards as a replica, so the cluster is whole for the next test.

Either way B finds the slot's new owner, subscribes there and tells its clients to recover,
which they do from history. The test publishes a marker after the 2,000 and waits for it, so a
late duplicate would show, and fails on any loss, duplicate, reorder or new epoch.

Every wait is bounded; pytest-timeout bounds the test as a whole.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from roomcast.engines.redis.slots import ChannelSlots
from tests.e2e.chaos.conftest import API_KEY, NAMESPACE, Nodes, node_env
from tests.e2e.chaos.harness import Publisher, Subscriber, subscriber, until
from tests.support.redis_cluster import RedisClusterProcess
from tests.support.server import RunningServer, start_server
from tests.support.server_log import log_problems
from tests.support.shared_engines import unique_prefix

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(150)]

COUNT = 2000
RATE = 400.0
SUBSCRIBERS = 3
DISRUPT_AFTER = 600
DELIVERED_WITHIN = 30.0


@pytest.fixture
def cluster_nodes(
    redis_cluster: RedisClusterProcess, tmp_path: Path
) -> Iterator[tuple[str, Nodes]]:
    """Nodes A and B on the cluster under a prefix of the test's own; stopped afterwards, and
    the test fails if either logged an error or a traceback."""
    prefix = unique_prefix()
    env = node_env(redis_cluster.url(prefix))
    started: list[RunningServer] = []
    lock = threading.Lock()

    def start(name: str) -> RunningServer:
        cwd = tmp_path / f"node-{name}"
        cwd.mkdir()
        server = start_server("--no-examples", env=env, cwd=cwd)
        with lock:
            started.append(server)
        return server

    try:
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(start, ("a", "b"))
        yield prefix, Nodes(a, b)
    finally:
        for server in started:
            server.stop()
        redis_cluster.delete(prefix)
    for name, server in zip("ab", (a, b), strict=True):
        problems = log_problems(server.log)
        assert problems == [], f"node {name}:\n" + "\n".join(problems)


@asynccontextmanager
async def _subscribers(ws_url: str, channel: str) -> AsyncIterator[list[Subscriber]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(subscriber(ws_url, channel, f"reader-{i}"))
            for i in range(SUBSCRIBERS)
        ]


@pytest.mark.parametrize("how", ["failover", "kill"])
async def test_a_master_lost_under_load_loses_and_repeats_nothing(
    redis_cluster: RedisClusterProcess, cluster_nodes: tuple[str, Nodes], how: str
) -> None:
    cluster, (_, nodes) = redis_cluster, cluster_nodes
    channel = f"{NAMESPACE}:{uuid.uuid4().hex[:12]}"
    slots = ChannelSlots(16)  # the URL's default partitions
    master = cluster.master_of(slots.tag(slots.partition(channel)))
    publisher = Publisher(f"{nodes.a.http}/api", channel, COUNT, RATE, API_KEY)

    async with _subscribers(f"{nodes.b.ws}/connection/websocket", channel) as subs:
        task = asyncio.create_task(publisher.run())
        try:
            await until(lambda: publisher.acked >= DISRUPT_AFTER, "publications", 30.0)
            began = time.monotonic()
            lose = cluster.failover if how == "failover" else cluster.kill
            promoted = await asyncio.to_thread(lose, master)
            failover_seconds = time.monotonic() - began
            assert cluster.master_of(slots.tag(slots.partition(channel))).port == promoted.port
            await asyncio.wait_for(asyncio.shield(task), publisher.give_up + COUNT / RATE)
            async with httpx.AsyncClient() as http:
                await publisher.publish(http, COUNT)  # the marker
            for i, sub in enumerate(subs):
                await until(
                    lambda feed=sub.feed: COUNT in feed.seqs,  # type: ignore[misc]
                    f"marker at subscriber {i}: {sub.feed!r}",
                    DELIVERED_WITHIN,
                )
        finally:
            task.cancel()
            if not master.running:
                await asyncio.to_thread(cluster.revive, master)

    print(
        f"\n[cluster {how}] {master.address} -> {promoted.address} in "
        f"{failover_seconds:.2f}s; failed publish attempts {len(publisher.failures)}"
        f"{', first: ' + publisher.failures[0].error if publisher.failures else ''}; "
        f"stored despite a failure {publisher.stored_despite_failure}"
    )
    for i, sub in enumerate(subs):
        feed = sub.feed
        print(f"[cluster {how}] subscriber {i}: {feed!r}")
        assert feed.unsubscribed == [], f"subscriber {i}: {feed!r}"
        for error in feed.errors:  # a resubscribe may meet the failover: temporary, retried
            assert (error.error.code, error.error.temporary) == (100, True), f"{i}: {feed!r}"
        # B's link lost the slot, found its new master and made every client recover
        assert feed.resubscribes, f"subscriber {i} was never told to recover: {feed!r}"
        assert all(c.was_recovering and c.recovered for c in feed.resubscribes), f"{i}: {feed!r}"
        assert feed.seqs == list(range(COUNT + 1)), f"subscriber {i}: {feed!r}"
    assert len(publisher.epochs) == 1, publisher.epochs  # the replica had the whole stream
    first = publisher.offsets[0]
    assert publisher.offsets == list(range(first, first + COUNT + 1)), publisher.offsets
