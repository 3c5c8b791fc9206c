"""Idle: server memory per connected-and-subscribed client.

A short warm-up (a few clients connect and leave, so lazily imported code and first-use
allocations are not charged to the clients), then the server's RSS is read, N clients connect
and subscribe, the server settles, and RSS is read again. ``kb_per_client`` is the difference
divided by N; ``connects_per_s`` is how fast the N clients got subscribed.
"""

from __future__ import annotations

import asyncio

from bench.scenarios.common import Context, Metrics

__all__ = ["run"]

_WARMUP = 20


async def run(ctx: Context) -> Metrics:
    s = ctx.sizes
    await ctx.subscribe(_WARMUP)
    await ctx.pool.close()
    await asyncio.sleep(0.5)
    rss_before = ctx.server.rss_kb()
    opened = await ctx.subscribe(s.idle_clients)
    ctx.status(f"{opened['opened']} clients idle, settling")
    await asyncio.sleep(s.idle_settle)
    rss_after = ctx.server.rss_kb()
    n = max(opened["opened"], 1)
    return {
        "clients": opened["opened"],
        "connect_s": opened["seconds"],
        "connects_per_s": opened["opened"] / opened["seconds"] if opened["seconds"] else None,
        "rss_before_mb": rss_before / 1024,
        "rss_after_mb": rss_after / 1024,
        "kb_per_client": (rss_after - rss_before) / n,
    }
