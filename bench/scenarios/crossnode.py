"""Cross-node: fan-out through each engine between two processes, beside one process on the
memory engine (roomcast only).

Configurations, one after the other in one run:

* ``memory`` - the baseline: the server the runner started (:func:`prepare`: memory broker,
  memory history), subscribers and publisher on it;
* ``redis``, ``postgresql``, ``nats`` (:data:`bench.roomcast_target.ENGINE_URLS`) - two
  ``roomcast serve`` processes started here on that engine (broker, presence and history), pinned
  to the same CPUs as the baseline: the subscribers connect to node B, the publisher to node A,
  so every delivery crosses the engine.

Each configuration gets the other scenarios' own measurements at this scenario's sizes
(``crossnode_*``), with fresh subscribers each: a :mod:`burst <bench.scenarios.burst>`
(deliveries/s, CPU of both nodes per delivery), a :mod:`fixed <bench.scenarios.fixed>` rate
(p50 / p99 latency) and one round of the :mod:`history <bench.scenarios.history>` ``on``
variant on ``hist:bench`` (publishes/s with a window of commands in flight; a checker on node B
verifies the offsets). The table gives ratios against ``memory``.

An engine this version of roomcast lacks, whose driver is not installed or that does not answer
on its port is a row ``skipped: <reason>``; one that keeps no history gets its history cell
skipped. Nodes that fail to start, or a measurement that fails, leave an error in their row or
cell and the run goes on. Each configuration is bounded in time (:func:`budget_s`); Redis keys
live under a prefix unique to the run and are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bench.config import Sizes
from bench.roomcast_target import (
    ENGINE_URLS,
    HISTORY_CHANNEL,
    clean_engine,
    engine_unavailable,
    history_unavailable,
    with_engine,
    with_history,
)
from bench.scenarios import burst, fixed, history
from bench.scenarios.common import EXPECTED_ERRORS, Context, Metrics, ScenarioError, describe_error
from bench.servers import ServerError, ServerProcess
from bench.targets import Target

__all__ = ["CONFIGURATIONS", "budget_s", "prepare", "run"]

CONFIGURATIONS = ("memory", *ENGINE_URLS)
MEMORY_URL = "memory://"


def prepare(target: Target) -> Target:
    """The baseline server: memory broker (the default) and memory history."""
    return with_history(target, MEMORY_URL)


def sizes_for(s: Sizes) -> Sizes:
    """The burst, fixed and history measurements' sizes at this scenario's scale."""
    return replace(
        s,
        burst_subscribers=s.crossnode_subscribers, burst_messages=s.crossnode_messages,
        burst_timeout=s.crossnode_timeout, fixed_subscribers=s.crossnode_subscribers,
        fixed_seconds=s.crossnode_seconds, history_messages=s.crossnode_history_messages,
        history_timeout=s.crossnode_timeout,
    )  # fmt: skip


def budget_s(s: Sizes) -> float:
    """Time limit for one configuration, far above its usual 20 s: two nodes start (30 s each
    at most), then three measurements connect their clients (15 s each, say) and run, each
    bounded by the sizes' limits (fixed: twice its length, then its drain; history: its own
    drain of 10 s after the publications and the warm-up's)."""
    connects = 3 * 15
    runs = 3 * s.crossnode_timeout + 2 * s.crossnode_seconds + s.fixed_drain + 2 * 10
    return 60 + connects + runs


async def _history(ctx: Context) -> Metrics:
    variant = history.Variant("on", "on", HISTORY_CHANNEL)
    await history.measure(ctx, variant, 0)
    figures = variant.metrics()
    if variant.offset_problems:
        ctx.warn("crossnode: offsets not consecutive: " + "; ".join(variant.offset_problems[:3]))
    return figures


_MEASUREMENTS: dict[str, Callable[[Context], Awaitable[Metrics]]] = {
    "burst": burst.run,
    "fixed": fixed.run,
    "history": _history,
}


async def _measure(ctx: Context, row: Metrics, skip_history: str | None) -> None:
    """Fill ``row`` with each measurement's figures, or its error."""
    for name, measure in _MEASUREMENTS.items():
        if name == "history" and skip_history is not None:
            row[name] = {"skipped": skip_history}
            continue
        try:
            row[name] = await measure(ctx)
        except EXPECTED_ERRORS as exc:
            row[name] = {"error": describe_error(exc)}
        finally:
            await ctx.pool.close()


async def _on_engine(ctx: Context, url: str, row: Metrics) -> None:
    """Two nodes on the engine at ``url``: subscribers on B, the publisher on A."""
    no_history = history_unavailable(url)
    target = with_engine(ctx.server.target, url, history=no_history is None)
    try:
        async with (
            ServerProcess(target, cpus=ctx.server.cpus) as node_a,
            ServerProcess(target, cpus=ctx.server.cpus) as node_b,
        ):
            await _measure(replace(ctx, server=node_b, publish_server=node_a), row, no_history)
            for node, label in ((node_a, "A"), (node_b, "B")):
                if not node.alive():
                    row["error"] = f"node {label} exited:\n{node.log_tail(400)}"
    finally:
        try:
            async with asyncio.timeout(15):
                await clean_engine(url)
        except Exception as exc:  # best effort: a failed clean-up loses no figure
            ctx.warn(f"crossnode: could not clean up {url}: {exc!r}")


async def _configuration(ctx: Context, name: str, url: str) -> Metrics:
    row: Metrics = {"url": url, "nodes": 1 if name == "memory" else 2}
    if name != "memory":
        reason = await asyncio.to_thread(engine_unavailable, url)  # tries to connect: 1 s at most
        if reason is not None:
            return {**row, "skipped": reason}
    try:
        async with asyncio.timeout(budget_s(ctx.sizes)):
            if name == "memory":
                await _measure(ctx, row, None)
            else:
                await _on_engine(ctx, url, row)
    except (ServerError, TimeoutError) as exc:
        row["error"] = describe_error(exc)
    return row


async def run(ctx: Context) -> Metrics:
    if ctx.server.target.dialect != "centrifuge":
        raise ScenarioError("crossnode needs roomcast (Centrifuge protocol)")
    s = ctx.sizes
    sizes = sizes_for(s)
    run_id = uuid.uuid4().hex[:12]
    urls = {"memory": MEMORY_URL, **{n: u.format(run=run_id) for n, u in ENGINE_URLS.items()}}
    configurations: Metrics = {}
    for name, url in urls.items():

        def status(text: str, name: str = name) -> None:
            ctx.status(f"{name}: {text}")

        configurations[name] = await _configuration(
            replace(ctx, sizes=sizes, status=status), name, url
        )
    return {
        "subscribers": s.crossnode_subscribers,
        "burst_publications": s.crossnode_messages,
        "fixed_rate": s.fixed_rate,
        "fixed_seconds": s.crossnode_seconds,
        "history_publications": s.crossnode_history_messages,
        "configurations": configurations,
    }
