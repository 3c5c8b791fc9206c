"""Connections: many thousands of subscribed WebSocket connections to one server process.

Two load-client processes of their own (each stays well under the per-process open-files
limit), with source addresses spread over 127.0.0.2-127.0.0.250 so no ephemeral port range
runs out, connect and subscribe ``connections`` clients. Measures:

* ``connects_per_s`` - clients subscribed per second, handshakes 200 at a time per process;
* ``kib_per_connection`` - the server's RSS growth per subscribed connection;
* ``reach_all_ms`` - from sending one publication until the last client received it;
* ``shutdown_s`` - from SIGTERM until the server process exited, every client still connected.

``connections2`` (roomcast only) does the same with ``connections`` clients on each of two
``roomcast serve`` nodes sharing Redis, one client process per node, and the publication sent
through node A: the per-connection cost of a cluster, and a fan-out that crosses it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

from bench.pool import ClientPool
from bench.roomcast_target import ENGINE_URLS, clean_engine, engine_unavailable, with_engine
from bench.scenarios.common import HOST, Context, Metrics, ScenarioError
from bench.servers import ServerProcess

__all__ = ["CLIENT_PROCESSES", "run", "run_two_nodes"]

CLIENT_PROCESSES = 2
HANDSHAKES_AT_ONCE = 200
WARMUP = 20
SHUTDOWN_GRACE = 60.0
"""Seconds a server gets to exit after SIGTERM before the scenario kills it (roomcast's own
drain timeout is 30 s)."""


async def run(ctx: Context) -> Metrics:
    s = ctx.sizes
    server = ctx.server
    async with ClientPool(CLIENT_PROCESSES, ctx.pool.nofile) as pool:

        async def subscribe(count: int) -> dict[str, int | float]:
            opened = await pool.open(
                host=HOST, port=server.port, dialect=server.target.dialect,
                channel=s.channel, count=count, deadline_s=s.connect_deadline,
                concurrency=HANDSHAKES_AT_ONCE, spread_sources=True,
            )  # fmt: skip
            if opened["opened"] < 0.95 * count:
                detail = "; ".join(f"{n}x {e}" for e, n in opened["errors"])
                raise ScenarioError(f"only {opened['opened']}/{count} clients subscribed: {detail}")
            return opened

        await subscribe(WARMUP)
        await pool.close()
        await asyncio.sleep(0.5)
        rss_before = server.rss_kb()
        ctx.status(f"connecting {s.connections} clients")
        opened = await subscribe(s.connections)
        ctx.status(f"{opened['opened']} clients connected, settling")
        await asyncio.sleep(s.idle_settle)
        rss_after = server.rss_kb()
        async with ctx.publisher() as pub:
            await pool.arm(1)
            ctx.status("one publication to all")
            sent_ns = time.monotonic_ns()
            await pub.publish(0, 100)
            got = await pool.collect(wait_s=s.connections_reach_timeout)
        ctx.status("shutting the server down under its clients")
        stopping = time.monotonic()
        await server.stop(grace=SHUTDOWN_GRACE)
        shutdown_s = time.monotonic() - stopping
    count = int(opened["opened"])
    if got.delivered < got.expected:
        ctx.warn(f"connections: {got.delivered}/{got.expected} clients got the publication")
    return {
        "clients": count,
        "connect_s": opened["seconds"],
        "connects_per_s": count / float(opened["seconds"]) if opened["seconds"] else None,
        "rss_before_mb": rss_before / 1024,
        "rss_after_mb": rss_after / 1024,
        "kib_per_connection": (rss_after - rss_before) / max(count, 1),
        "reached": got.delivered,
        "reach_all_ms": (got.last_ns - sent_ns) / 1e6 if got.last_ns else None,
        "shutdown_s": shutdown_s,
        "client_processes": CLIENT_PROCESSES,
    }


async def run_two_nodes(ctx: Context) -> Metrics:
    """``connections`` clients on each of two ``roomcast serve`` nodes sharing Redis (one
    client process per node), one publication through node A reaching both nodes' clients."""
    if ctx.server.target.dialect != "centrifuge":
        raise ScenarioError("connections2 needs roomcast (a cluster over an engine)")
    s = ctx.sizes
    url = ENGINE_URLS["redis"].format(run=uuid.uuid4().hex[:12])
    reason = await asyncio.to_thread(engine_unavailable, url)
    if reason is not None:
        raise ScenarioError(f"connections2: Redis: {reason}")
    target = with_engine(ctx.server.target, url, history=False)
    try:
        async with (
            ServerProcess(target, cpus=ctx.server.cpus) as node_a,
            ServerProcess(target, cpus=ctx.server.cpus) as node_b,
            ClientPool(2, ctx.pool.nofile) as pool,
        ):
            nodes = [node_a, node_b]
            rss_before = [node.rss_kb() for node in nodes]
            ctx.status(f"connecting {s.connections} clients to each of two nodes")
            opened = await pool.open_each(
                ports=[node.port for node in nodes], host=HOST, dialect=target.dialect,
                channel=s.channel, count=s.connections, deadline_s=s.connect_deadline,
                concurrency=HANDSHAKES_AT_ONCE, spread_sources=True,
            )  # fmt: skip
            count = sum(int(reply["opened"]) for reply in opened)
            if count < 0.95 * 2 * s.connections:
                detail = "; ".join(f"{n}x {e}" for r in opened for e, n in r["errors"])
                raise ScenarioError(f"only {count}/{2 * s.connections} subscribed: {detail}")
            seconds = max(float(reply["seconds"]) for reply in opened)
            await asyncio.sleep(s.idle_settle)
            growth = sum(node.rss_kb() for node in nodes) - sum(rss_before)
            async with replace(ctx, server=node_a).publisher() as pub:
                await pool.arm(1)
                ctx.status("one publication through node A to both nodes' clients")
                sent_ns = time.monotonic_ns()
                await pub.publish(0, 100)
                got = await pool.collect(wait_s=s.connections_reach_timeout)
            ctx.status("shutting both nodes down under their clients")
            stopping = time.monotonic()
            await asyncio.gather(*(node.stop(grace=SHUTDOWN_GRACE) for node in nodes))
            shutdown_s = time.monotonic() - stopping
    finally:
        try:
            async with asyncio.timeout(15):
                await clean_engine(url)
        except Exception as exc:  # best effort: a failed clean-up loses no figure
            ctx.warn(f"connections2: could not clean up {url}: {exc!r}")
    if got.delivered < got.expected:
        ctx.warn(f"connections2: {got.delivered}/{got.expected} clients got the publication")
    return {
        "clients": count,
        "connect_s": seconds,
        "connects_per_s": count / seconds if seconds else None,
        "kib_per_connection": growth / max(count, 1),
        "reached": got.delivered,
        "reach_all_ms": (got.last_ns - sent_ns) / 1e6 if got.last_ns else None,
        "shutdown_s": shutdown_s,
        "client_processes": 2,
    }
