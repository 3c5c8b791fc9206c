"""Fixed load: N subscribers, publications at a steady rate for a few seconds.

Measures the publish-to-delivery latency (p50 / p99) when the server is *not* flooded - the
figure a chat or dashboard user feels. If the server cannot sustain the rate, its backlog
grows and shows up here as a rising p99 (and ``delivered_pct`` < 100 after the drain time).
``run`` publishes at the sizes' ``fixed_rate`` (50/s); :func:`at` makes the same scenario at
another rate (the runner's ``fixed100`` and ``fixed200``: 100k and 200k deliveries/s to 1,000
subscribers, where a server's per-iteration costs start to queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bench.scenarios.common import Context, Metrics, latency_metrics

__all__ = ["at", "run"]


async def run(ctx: Context) -> Metrics:
    """The fixed-load scenario at the sizes' ``fixed_rate``."""
    return await _run(ctx, ctx.sizes.fixed_rate)


def at(rate: float) -> Callable[[Context], Awaitable[Metrics]]:
    """The fixed-load scenario at ``rate`` publications per second."""

    async def run_at_rate(ctx: Context) -> Metrics:
        return await _run(ctx, rate)

    return run_at_rate


async def _run(ctx: Context, rate: float) -> Metrics:
    s = ctx.sizes
    count = int(rate * s.fixed_seconds)
    opened = await ctx.subscribe(s.fixed_subscribers)
    loop = asyncio.get_running_loop()
    late = 0
    async with ctx.publisher() as pub:
        await ctx.pool.arm(count)
        cpu_before = ctx.cpu_seconds()
        ctx.status(f"publishing {rate:.0f}/s for {s.fixed_seconds:.0f} s")
        start = loop.time()
        sent = 0
        try:
            async with asyncio.timeout(s.fixed_seconds * 2 + 5):
                for seq in range(count):
                    delay = start + seq / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -0.5 / rate:
                        late += 1
                    await pub.publish(seq, s.burst_size)
                    sent += 1
        except TimeoutError:
            ctx.warn(f"fixed: publisher stalled after {sent}/{count} publications")
        elapsed = loop.time() - start
        ctx.status("draining")
        got = await ctx.pool.collect(wait_s=s.fixed_drain)
        server_cpu = ctx.cpu_seconds() - cpu_before
        wall = loop.time() - start
    ctx.check_clients(got, "fixed")
    if late > count // 10:
        ctx.warn(f"fixed: {late}/{count} publications left late (publisher held back)")
    return {
        "subscribers": opened["opened"],
        "rate": rate,
        "publications": sent,
        "achieved_rate": sent / elapsed if elapsed > 0 else 0.0,
        "late_publications": late,
        "server_cpu_pct": 100 * server_cpu / max(wall, 1e-9),
        **latency_metrics(got),
        "publish_errors": pub.errors,
    }
