"""Runs every selected scenario against every selected server, one server at a time.

Each (server, scenario) pair gets a freshly started server, so one scenario's leftovers (a
broadcast stuck on a stalled client, memory never returned) cannot colour the next; the
client workers are started once and reused. Every step is bounded: a pair that overruns its
budget is recorded as an error and the run moves on.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from bench.config import Sizes
from bench.machine import LoadMonitor
from bench.pool import ClientPool, WorkerError
from bench.profiler import profiled
from bench.scenarios import (
    EXPECTED_ERRORS,
    ONLY,
    PREPARE,
    SCENARIOS,
    Context,
    Metrics,
    crossnode,
    describe_error,
)
from bench.servers import ServerProcess
from bench.targets import Target

__all__ = ["RunConfig", "raise_nofile", "run", "split_cpus"]

FOREIGN_LOAD_PCT = 15.0
"""Warn when other programs (or the hypervisor) took more than this share of one core."""


@dataclass(frozen=True)
class RunConfig:
    """What to run."""

    targets: list[Target]
    scenarios: list[str]
    sizes: Sizes
    quick: bool
    publish: str
    workers: int
    pin: bool = True
    profile: Path | None = None
    """Where py-spy profiles of every server go (one file per scenario), or None."""

    @property
    def budget_s(self) -> float:
        """Hard limit for one (server, scenario) pair, start-up and teardown included."""
        s = self.sizes
        # history: a second server, then rounds x 3 measurements (burst + drain + reconnects)
        history = 30 + s.history_rounds * 3 * (s.history_timeout + 20)
        # crossnode: every configuration one after the other, each bounded on its own
        crossnode_s = len(crossnode.CONFIGURATIONS) * crossnode.budget_s(s)
        longest = max(
            s.burst_timeout, s.fixed_seconds * 2 + 5 + s.fixed_drain, s.slow_timeout * 2 + 15,
            history if "history" in self.scenarios else 0,
            crossnode_s if "crossnode" in self.scenarios else 0,
        )  # fmt: skip
        return 60.0 + 2 * s.connect_deadline + longest


def raise_nofile(needed: int) -> tuple[int, str | None]:
    """Raise the soft open-files limit (inherited by workers and servers); returns it, and a
    warning when the hard limit is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft < needed:
        return soft, f"open-files limit {soft} < {needed} needed: raise `ulimit -Hn`"
    return soft, None


def split_cpus() -> tuple[set[int], set[int]] | None:
    """Half the CPUs for the server, the other half for the clients (None on one CPU).

    Pinning keeps the scheduler from stacking the server and its load clients on one core
    (wake-affine placement of a busy producer/consumer pair), which slows both and makes the
    figures a matter of luck; it also gives every server the same share of the machine.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def _versions() -> dict[str, str]:
    versions = {}
    for dist in ("roomcast", "fastapi", "uvicorn", "python-socketio", "python-engineio",
                 "websockets", "uvloop", "httptools"):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


@dataclass
class _Run:
    """State shared by every (server, scenario) pair of one run."""

    cfg: RunConfig
    pool: ClientPool
    server_cpus: set[int] | None
    warnings: list[str]

    async def one(self, target: Target, scenario: str, status: Callable[[str], None]) -> Metrics:
        """Start a fresh server, run one scenario against it, stop it; errors become results."""
        ctx: Context | None = None
        try:
            async with asyncio.timeout(self.cfg.budget_s):
                status("starting server")
                prepare = PREPARE.get(scenario)
                started = prepare(target) if prepare is not None else target
                async with ServerProcess(started, cpus=self.server_cpus) as server:
                    via = target.publish_via(self.cfg.publish)
                    ctx = Context(server, self.pool, self.cfg.sizes, via, status)
                    monitor = LoadMonitor()  # this process, the server and the workers
                    monitor.start()
                    name = f"{target.name}-{scenario}"
                    try:
                        async with profiled(server.pid, self.cfg.profile, name) as warning:
                            if warning:
                                ctx.warn(warning)
                            metrics = await SCENARIOS[scenario](ctx)
                        metrics.update(monitor.stop())
                        self._check_load(ctx, scenario, metrics)
                    finally:
                        status("closing clients")
                        try:
                            await self.pool.close()
                        except WorkerError as exc:
                            ctx.warn(f"{scenario}: {exc}")
                    if not server.alive() and not server.stopped:
                        ctx.warn(f"{scenario}: the server exited during the run:\n"
                                 f"{server.log_tail(600)}")  # fmt: skip
                    return metrics
        except EXPECTED_ERRORS as exc:
            return {"error": describe_error(exc)}
        finally:
            if ctx is not None:
                self.warnings.extend(ctx.warnings)

    @staticmethod
    def _check_load(ctx: Context, scenario: str, metrics: Metrics) -> None:
        if metrics["foreign_cpu_pct"] > FOREIGN_LOAD_PCT:
            ctx.warn(
                f"{scenario}: other processes used {metrics['foreign_cpu_pct']:.0f} % of a "
                "core meanwhile: figures are noisy"
            )
        if metrics["steal_pct"] > FOREIGN_LOAD_PCT:
            ctx.warn(f"{scenario}: the hypervisor stole {metrics['steal_pct']:.0f} % of a core")


async def run(cfg: RunConfig, console: Console) -> dict[str, Any]:
    """Run everything; returns the results document written to ``latest.json``."""
    nofile, nofile_warning = raise_nofile(
        max(cfg.sizes.idle_clients + 1024, cfg.sizes.connections + 500)
    )
    warnings: list[str] = [nofile_warning] if nofile_warning else []
    results: dict[str, dict[str, Metrics]] = {t.name: {} for t in cfg.targets}
    started = time.monotonic()
    original_cpus = os.sched_getaffinity(0)
    split = split_cpus() if cfg.pin else None
    if split is not None:  # the workers and the publisher (this process) get the client half
        os.sched_setaffinity(0, split[1])
    progress = Progress(
        SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False,
    )  # fmt: skip
    try:
        with progress:
            task = progress.add_task("starting", total=len(cfg.targets) * len(cfg.scenarios))
            async with ClientPool(cfg.workers, nofile) as pool:
                state = _Run(cfg, pool, split[0] if split else None, warnings)
                reasons = {target.name: target.availability() for target in cfg.targets}
                # Scenario after scenario, every server in turn: the figures a ratio compares
                # are taken seconds apart, not minutes, on a machine whose load drifts.
                for scenario in cfg.scenarios:
                    for target in cfg.targets:
                        reason = reasons[target.name]
                        label = f"{target.name} · {scenario}"
                        progress.update(task, description=label)

                        def status(text: str, label: str = label) -> None:
                            progress.update(task, description=f"{label}: {text}")

                        only = ONLY.get(scenario)
                        if only is not None and target.name not in only[0]:
                            metrics: Metrics = {"skipped": only[1]}
                        elif reason is not None:
                            metrics = {"error": f"unavailable: {reason}"}
                        else:
                            metrics = await state.one(target, scenario, status)
                        results[target.name][scenario] = metrics
                        progress.advance(task)
                progress.update(task, description="done")
    finally:
        os.sched_setaffinity(0, original_cpus)
    return {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - started, 1),
            "quick": cfg.quick,
            "sizes": cfg.sizes.as_dict(),
            "client_workers": cfg.workers,
            "cpus": {"server": sorted(split[0]), "clients": sorted(split[1])} if split else None,
            "servers": {
                t.name: {
                    "label": t.label,
                    "dialect": t.dialect,
                    "publish_via": t.publish_via(cfg.publish),
                }
                for t in cfg.targets
            },
            "scenarios": cfg.scenarios,
            "machine": {
                "cpus": len(original_cpus),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "versions": _versions(),
        },
        "results": results,
        "warnings": warnings,
    }
