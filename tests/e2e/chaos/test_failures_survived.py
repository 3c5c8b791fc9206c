"""Failures survived: the engine restarts, or a node dies, while a publisher keeps going, and
every SDK subscriber still ends up with every publication exactly once, in order: a duplicate
anywhere fails the test.

Each test runs its own engine server (``tests.support.engine_processes``: never the machine's
shared Redis, PostgreSQL or NATS) and two ``roomcast serve`` nodes on it, A and B. A publisher sends
``{"seq": n}`` for n in 0..1999 at 400 per second through node A's HTTP server API, each with
an idempotency key and every failed attempt retried with it, as a client does, and three
``centrifuge-python`` clients subscribed (with recovery) on node B record what they get;
after the 2,000 the publisher sends one marker (seq 2000) and the test waits for it, so a late
duplicate or a stray replay would be in the lists it checks. The SDK does not deduplicate:
a list is what the SDK handed the application.

- ``test_engine_restart_while_publishing``: the engine is stopped cleanly mid-stream, stays
  down about a second, and starts again on its port with its data (Redis with an fsynced
  append-only file, PostgreSQL, NATS JetStream on disk). Meanwhile a publish fails promptly
  with a clear, temporary error (the publisher retries), ``/readyz`` answers 503 on both
  nodes and ``/healthz`` 200; afterwards ``/readyz`` is 200 again. ``redis-volatile`` is a
  Redis without persistence: its restart wipes history, so the subscribers are told
  ``recovered: false`` and miss what was published before they resubscribed, never getting
  anything twice or out of order.
- ``test_sigkill_node_b``: the subscribers reach node B through a TCP proxy (a load
  balancer); node B is killed with SIGKILL mid-stream and the proxy sends new connections to
  node A. The SDKs reconnect there, resubscribe with ``recover`` and are told
  ``recovered: true``.
- ``test_first_history_read_after_an_engine_restart_succeeds``: once ``/readyz`` is 200
  again after an engine restart, a node's next history read succeeds (no pooled connection
  from before the restart is handed out broken).

Every wait is bounded; pytest-timeout bounds each test as a whole.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest

from tests.e2e.chaos.conftest import API_KEY, NAMESPACE, Nodes
from tests.e2e.chaos.harness import Publisher, Subscriber, subscriber, until
from tests.support.engine_processes import EngineProcess
from tests.support.server import RunningServer
from tests.support.server_log import engine_down_tracebacks
from tests.support.tcp_proxy import Proxy

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]

COUNT = 2000
RATE = 400.0
SUBSCRIBERS = 3
DISRUPT_AFTER = 600
"""Publications acknowledged before the failure: a third of the stream."""
DOWN_FOR = 1.0
PROMPT = 3.0
"""The longest a publish may take to fail while the engine is down."""
NOT_READY_WITHIN = 10.0
READY_AGAIN_WITHIN = 20.0
DELIVERED_WITHIN = 30.0

PERSISTENT_ENGINES = ["redis", "postgres", "nats"]


def _channel() -> str:
    return f"{NAMESPACE}:{uuid.uuid4().hex[:12]}"


async def _status(http: httpx.AsyncClient, node: RunningServer, path: str) -> int | str:
    try:
        return (await http.get(f"{node.http}{path}", timeout=2.0)).status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"


async def _until_status(
    http: httpx.AsyncClient, node: RunningServer, path: str, wanted: int, seconds: float
) -> float:
    """Poll ``path`` until it answers ``wanted``; the seconds that took."""
    started = time.monotonic()
    last: int | str = "none"
    while time.monotonic() - started < seconds:
        last = await _status(http, node, path)
        if last == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    pytest.fail(f"{node.http}{path} did not answer {wanted} within {seconds}s (last: {last})")


@asynccontextmanager
async def _subscribers(ws_url: str, channel: str) -> AsyncIterator[list[Subscriber]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(subscriber(ws_url, channel, f"reader-{i}"))
            for i in range(SUBSCRIBERS)
        ]


async def _finish(publisher: Publisher, task: asyncio.Task[None], subs: list[Subscriber]) -> None:
    """Wait for the publisher, publish the marker, and wait until every subscriber has it."""
    await asyncio.wait_for(asyncio.shield(task), publisher.give_up + COUNT / RATE)
    async with httpx.AsyncClient() as http:
        await publisher.publish(http, COUNT)  # the marker
    for i, sub in enumerate(subs):
        await until(
            lambda feed=sub.feed: COUNT in feed.seqs,  # type: ignore[misc]
            f"marker at subscriber {i}: {sub.feed!r}",
            DELIVERED_WITHIN,
        )


def _report(
    name: str, nodes: Nodes, publisher: Publisher, subs: list[Subscriber], **extra: object
) -> None:
    """What happened, for the -s / -rA output of a run (and a failing assertion's context)."""
    for node_name, node in zip("AB", nodes.both, strict=True):
        lines = [line for line in node.log.splitlines() if line.startswith(("WARNING", "ERROR"))]
        for line in sorted(set(lines), key=lines.index):
            print(f"\n[{name}] node {node_name} ({lines.count(line)}x): {line}", end="")
        ends = engine_down_tracebacks(node.log)
        for line in sorted(set(ends), key=ends.index):
            print(f"\n[{name}] node {node_name} traceback ({ends.count(line)}x): {line}", end="")
    print(f"\n[{name}] failed publish attempts: {len(publisher.failures)}", end="")
    if publisher.failures:
        slowest = max(f.seconds for f in publisher.failures)
        print(f", slowest {slowest:.3f}s, first: {publisher.failures[0].error}", end="")
    print(f"; stored despite a failure: {publisher.stored_despite_failure}; epochs", end="")
    print(f" {len(publisher.epochs)}; {extra}")
    for i, sub in enumerate(subs):
        print(f"[{name}] subscriber {i}: {sub.feed!r}")


@pytest.mark.parametrize(
    "engine", [*PERSISTENT_ENGINES, "redis-volatile"], indirect=True
)  # fmt: skip
async def test_engine_restart_while_publishing(engine: EngineProcess, nodes: Nodes) -> None:
    volatile = not getattr(engine, "persistent", True)
    channel = _channel()
    publisher = Publisher(f"{nodes.a.http}/api", channel, COUNT, RATE, API_KEY)
    health: list[tuple[str, int | str]] = []
    outage = asyncio.Event()

    async def watch_health(http: httpx.AsyncClient) -> None:
        await outage.wait()
        while outage.is_set():
            for node in nodes.both:
                health.append((node.http, await _status(http, node, "/healthz")))
            await asyncio.sleep(0.05)

    async with (
        _subscribers(f"{nodes.b.ws}/connection/websocket", channel) as subs,
        httpx.AsyncClient() as http,
    ):
        task = asyncio.create_task(publisher.run())
        watcher = asyncio.create_task(watch_health(http))
        try:
            await until(lambda: publisher.acked >= DISRUPT_AFTER, "publications", 30.0)
            acked_before = publisher.acked
            outage.set()
            await asyncio.to_thread(engine.stop)
            down_at = time.monotonic()

            # Both nodes say they are not ready; a publish fails at once, with a clear error.
            for node in nodes.both:
                await _until_status(http, node, "/readyz", 503, NOT_READY_WITHIN)
            started = time.monotonic()
            body = {"channel": _channel(), "data": {"seq": -1}}
            result, error = await publisher.call(http, "publish", body)
            probe_seconds = time.monotonic() - started
            assert result is None, f"a publish succeeded with the engine down: {result}"
            assert probe_seconds < PROMPT, f"the failing publish took {probe_seconds:.1f}s"
            assert "'code': 100" in error, error
            assert "engine unavailable, retry later" in error, error

            await asyncio.sleep(max(0.0, DOWN_FOR - (time.monotonic() - down_at)))
            await asyncio.to_thread(engine.start)
            up_at = time.monotonic()
            ready_after = [
                await _until_status(http, node, "/readyz", 200, READY_AGAIN_WITHIN)
                for node in nodes.both
            ]
            outage.clear()
            await _finish(publisher, task, subs)
        finally:
            outage.clear()
            task.cancel()
            watcher.cancel()
        _report(
            engine.url,
            nodes,
            publisher,
            subs,
            down_seconds=round(up_at - down_at, 2),
            ready_after=[round(s, 2) for s in ready_after],
        )

        assert health, "/healthz was never asked during the outage"
        assert {status for _, status in health} == {200}, health
        # Every failed attempt failed promptly, with the temporary engine error.
        for failure in publisher.failures:
            assert failure.seconds < PROMPT, failure
            assert "engine unavailable, retry later" in failure.error, failure
        assert publisher.failures, "no publish failed although the engine was down"

        for i, sub in enumerate(subs):
            feed = sub.feed
            assert feed.unsubscribed == [], f"subscriber {i}: {feed!r}"
            # A resubscribe may be refused with a temporary error (the SDK tries again), never
            # with another; see test_first_history_read_after_an_engine_restart_succeeds.
            for error in feed.errors:
                assert (error.error.code, error.error.temporary) == (100, True), f"{i}: {feed!r}"
            assert feed.resubscribes, f"subscriber {i} never resubscribed: {feed!r}"
            assert all(ctx.was_recovering for ctx in feed.resubscribes), f"{i}: {feed!r}"
            if volatile:
                # History was wiped: told so, and never handed anything twice or out of order.
                assert not feed.resubscribes[-1].recovered, f"subscriber {i}: {feed!r}"
                assert feed.seqs == sorted(set(feed.seqs)), f"subscriber {i}: {feed!r}"
                assert feed.seqs[:acked_before] == list(range(acked_before)), f"{i}: {feed!r}"
                assert feed.seqs[-1] == COUNT, f"subscriber {i}: {feed!r}"
            else:
                assert all(ctx.recovered for ctx in feed.resubscribes), f"{i}: {feed!r}"
                assert feed.seqs == list(range(COUNT + 1)), f"subscriber {i}: {feed!r}"
        if not volatile:
            assert len(publisher.epochs) == 1, publisher.epochs  # the stream went on
            # Each publication stored once: the offsets run on without a gap, although some
            # attempts failed after the engine had stored them (the retry got the first result).
            first = publisher.offsets[0]
            assert publisher.offsets == list(range(first, first + COUNT + 1)), publisher.offsets


@pytest.mark.parametrize("engine", PERSISTENT_ENGINES, indirect=True)
async def test_sigkill_node_b(engine: EngineProcess, nodes: Nodes) -> None:
    channel = _channel()
    publisher = Publisher(f"{nodes.a.http}/api", channel, COUNT, RATE, API_KEY)
    proxy = Proxy("127.0.0.1", nodes.b.port)
    await proxy.start()
    try:
        proxied = f"ws://127.0.0.1:{proxy.port}/connection/websocket"
        async with _subscribers(proxied, channel) as subs:
            task = asyncio.create_task(publisher.run())
            try:
                await until(lambda: publisher.acked >= DISRUPT_AFTER, "publications", 30.0)
                code = await asyncio.to_thread(nodes.b.stop, signal.SIGKILL)
                assert code == -signal.SIGKILL
                proxy.upstream_port = nodes.a.port  # the load balancer's next choice
                killed_at = time.monotonic()
                for i, sub in enumerate(subs):
                    await until(
                        lambda s=sub: len(s.feed.subscribed) >= 2,  # type: ignore[misc]
                        f"resubscribe of subscriber {i} on node A",
                        DELIVERED_WITHIN,
                    )
                back_after = time.monotonic() - killed_at
                await _finish(publisher, task, subs)
            finally:
                task.cancel()
            _report(engine.url, nodes, publisher, subs, back_after=round(back_after, 2))

            assert publisher.failures == [], publisher.failures
            for i, sub in enumerate(subs):
                feed = sub.feed
                assert (feed.unsubscribed, feed.errors) == ([], []), f"subscriber {i}: {feed!r}"
                assert len(sub.connection.connected) == 2, f"subscriber {i}: {feed!r}"
                resubscribes = [(c.was_recovering, c.recovered) for c in feed.resubscribes]
                assert resubscribes == [(True, True)], f"subscriber {i}: {feed!r}"
                assert feed.seqs == list(range(COUNT + 1)), f"subscriber {i}: {feed!r}"
            assert len(publisher.epochs) == 1, publisher.epochs
    finally:
        await proxy.close()


@pytest.mark.parametrize(
    "engine",
    [
        "redis",
        "postgres",
        "nats",
    ],
    indirect=True,
)
async def test_first_history_read_after_an_engine_restart_succeeds(
    engine: EngineProcess, nodes: Nodes
) -> None:
    """Once ``/readyz`` says a node is ready again after an engine restart, its next request
    succeeds: the connections it kept from before the restart are not handed out broken.
    (In the restart test above this shows as a resubscribe refused with error 100 after the
    engine came back.)"""
    channel = _channel()
    api = Publisher(f"{nodes.b.http}/api", channel, 0, RATE, API_KEY)
    body = {"channel": channel, "limit": -1}
    async with httpx.AsyncClient() as http:
        result, error = await api.call(http, "history", body)  # a connection for the pool
        assert result is not None, error
        await asyncio.to_thread(engine.restart, 0.2)
        await _until_status(http, nodes.b, "/readyz", 200, READY_AGAIN_WITHIN)
        result, error = await api.call(http, "history", body)
        assert result is not None, error
