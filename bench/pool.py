"""The main process' handle on the load-client workers (see :mod:`bench.worker`).

Clients are spread evenly over the workers; stalled clients all live on worker 0. Every call
is bounded: a worker that does not answer in time raises :class:`WorkerError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.worker import worker_main

__all__ = ["ClientPool", "Collected", "WorkerError"]

SATURATED = 0.9
"""A worker busy for more than this share of the measurement may have limited the result."""


class WorkerError(RuntimeError):
    """A worker failed a command, or did not answer within its time limit."""


@dataclass
class Collected:
    """Deliveries gathered from every worker for one measurement."""

    delivered: int
    expected: int
    latencies_ns: array[int]
    first_ns: int
    last_ns: int
    closed: int
    close_codes: dict[str, int]
    min_per_client: int
    wall_s: float = 0.0
    cpu_share: list[float] = field(default_factory=list)

    @property
    def saturated(self) -> bool:
        """A worker was busy nearly all along a measurement long enough for that to mean it."""
        return self.wall_s >= 1.0 and any(share > SATURATED for share in self.cpu_share)


class _Lane:
    """One worker's pipe, used from worker threads one call at a time (a call abandoned by a
    cancelled caller still owns the pipe until its own time limit); remembers replies it gave
    up waiting for, to skip them later."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.stale = 0
        self._lock = threading.Lock()

    def roundtrip(self, command: str, kwargs: dict[str, Any], timeout: float) -> Any:
        with self._lock:
            return self._roundtrip(command, kwargs, timeout)

    def _roundtrip(self, command: str, kwargs: dict[str, Any], timeout: float) -> Any:
        while self.stale:
            if not self.pipe.poll(timeout):
                raise WorkerError(f"worker still busy with an earlier command ({command!r})")
            self.pipe.recv()
            self.stale -= 1
        try:
            self.pipe.send((command, kwargs))
            if not self.pipe.poll(timeout):
                self.stale += 1
                raise WorkerError(f"worker did not answer {command!r} within {timeout:.0f} s")
            return self.pipe.recv()
        except (EOFError, OSError) as exc:
            raise WorkerError(f"worker process is gone ({command!r}): {exc!r}") from exc


class ClientPool:
    """``workers`` load-client processes; use as ``async with ClientPool(n) as pool``."""

    def __init__(self, workers: int, nofile: int) -> None:
        self.size = workers
        self._nofile = nofile
        self._lanes: list[_Lane] = []
        self._procs: list[BaseProcess] = []

    async def __aenter__(self) -> ClientPool:
        ctx = multiprocessing.get_context("spawn")
        for index in range(self.size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main,
                args=(child, self._nofile),
                name=f"bench-client-{index}",
                daemon=True,
            )
            proc.start()
            child.close()
            self._lanes.append(_Lane(parent))
            self._procs.append(proc)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for lane in self._lanes:
            with contextlib.suppress(WorkerError, OSError):
                await self._call(lane, "quit", {}, 10.0)
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)

    async def _call(
        self, lane: _Lane, command: str, kwargs: dict[str, Any], limit_s: float
    ) -> dict[str, Any]:
        reply: dict[str, Any] = await asyncio.to_thread(lane.roundtrip, command, kwargs, limit_s)
        if "error" in reply:
            raise WorkerError(reply["error"])
        return reply

    async def _all(
        self, command: str, kwargs: list[dict[str, Any]], limit_s: float
    ) -> list[dict[str, Any]]:
        calls = [self._call(lane, command, kw, limit_s)
                 for lane, kw in zip(self._lanes, kwargs, strict=True)]  # fmt: skip
        return list(await asyncio.gather(*calls))

    @property
    def nofile(self) -> int:
        """The open-files limit each worker raises itself to."""
        return self._nofile

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [p.pid for p in self._procs if p.pid is not None]

    def split(self, count: int) -> list[int]:
        """``count`` clients spread over the workers, the remainder on the first ones."""
        base, extra = divmod(count, self.size)
        return [base + (1 if i < extra else 0) for i in range(self.size)]

    async def open(
        self,
        *,
        host: str,
        port: int,
        dialect: str,
        channel: str,
        count: int,
        per_client_s: float = 10.0,
        deadline_s: float = 60.0,
        concurrency: int = 100,
        spread_sources: bool = False,
    ) -> dict[str, Any]:
        """Connect and subscribe ``count`` healthy clients; returns opened/failed/errors/seconds.

        ``concurrency`` handshakes at a time per worker; ``spread_sources`` binds the clients
        to source addresses 127.0.0.2-127.0.0.250 in turn."""
        shares = self.split(count)
        common = {
            "host": host,
            "port": port,
            "dialect": dialect,
            "channel": channel,
            "per_client_s": per_client_s,
            "deadline_s": deadline_s,
            "concurrency": concurrency,
            "spread_sources": spread_sources,
        }
        replies = await self._all("open", [{**common, "count": n} for n in shares], deadline_s + 15)
        return {
            "opened": sum(r["opened"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "errors": [e for r in replies for e in r["errors"]],
            "seconds": max(r["seconds"] for r in replies),
        }

    async def open_each(
        self, *, ports: list[int], host: str, dialect: str, channel: str, count: int,
        deadline_s: float = 60.0, concurrency: int = 100, spread_sources: bool = False,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Worker ``i`` connects and subscribes ``count`` clients to ``ports[i]`` (one server
        per worker); returns each worker's opened/failed/errors/seconds."""
        common = {
            "host": host, "dialect": dialect, "channel": channel, "count": count,
            "per_client_s": 10.0, "deadline_s": deadline_s, "concurrency": concurrency,
            "spread_sources": spread_sources,
        }  # fmt: skip
        return await self._all(
            "open", [{**common, "port": port} for port in ports], deadline_s + 15
        )

    async def open_stalled(self, *, host: str, port: int, dialect: str, channel: str,
                           count: int, rcvbuf: int, per_client_s: float = 10.0
                           ) -> dict[str, Any]:  # fmt: skip
        """Connect ``count`` clients that subscribe and then stop reading (on worker 0)."""
        kwargs = {
            "host": host,
            "port": port,
            "dialect": dialect,
            "channel": channel,
            "count": count,
            "stalled": True,
            "rcvbuf": rcvbuf,
            "per_client_s": per_client_s,
            "deadline_s": per_client_s,
        }
        return await self._call(self._lanes[0], "open", kwargs, per_client_s + 15)

    async def arm(self, per_client: int) -> None:
        """Start a measurement: every healthy client should receive ``per_client`` messages."""
        await self._all("arm", [{"per_client": per_client}] * self.size, 15)

    async def collect(self, wait_s: float) -> Collected:
        """Wait at most ``wait_s`` seconds for the armed deliveries, then merge the figures."""
        replies = await self._all("collect", [{"wait_s": wait_s}] * self.size, wait_s + 30)
        latencies: array[int] = array("q")
        codes: dict[str, int] = {}
        for reply in replies:
            latencies.frombytes(reply["latencies"])
            for code, n in reply["close_codes"].items():
                codes[code] = codes.get(code, 0) + n
        firsts = [r["first_ns"] for r in replies if r["first_ns"]]
        return Collected(
            delivered=sum(r["delivered"] for r in replies),
            expected=sum(r["expected"] for r in replies),
            latencies_ns=latencies,
            first_ns=min(firsts, default=0),
            last_ns=max(r["last_ns"] for r in replies),
            closed=sum(r["closed"] for r in replies),
            close_codes=codes,
            min_per_client=min(r["min_per_client"] for r in replies),
            wall_s=max(r["wall"] for r in replies),
            cpu_share=[r["cpu"] / r["wall"] if r["wall"] else 0.0 for r in replies],
        )

    async def stall_report(self, drain_s: float) -> list[dict[str, Any]]:
        """What became of the stalled clients (see :mod:`bench.worker`)."""
        reply = await self._call(
            self._lanes[0], "stall_report", {"drain_s": drain_s}, drain_s * 4 + 15
        )
        stalled: list[dict[str, Any]] = reply["stalled"]
        return stalled

    async def close(self) -> None:
        """Drop every client connection on every worker."""
        await self._all("close", [{}] * self.size, 30)
