"""Connections: many thousands of subscribed WebSocket connections to one server process.

Two load-client processes of their own (each stays well under the per-process open-files
limit), with source addresses spread over 127.0.0.2-127.0.0.250 so no ephemeral port range
runs out, connect and subscribe ``connections`` clients. Measures:

* ``connects_per_s`` - clients subscribed per second, handshakes 200 at a time per process;
* ``kib_per_connection`` - the server's RSS growth per subscribed connection;
* ``reach_all_ms`` - from sending one publication until the last client received it;
* ``shutdown_s`` - from SIGTERM until the server process exited, every client still connected.
"""

from __future__ import annotations

import asyncio
import time

from bench.pool import ClientPool
from bench.scenarios.common import HOST, Context, Metrics, ScenarioError

__all__ = ["CLIENT_PROCESSES", "run"]

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
