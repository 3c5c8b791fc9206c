"""The load-client worker process: holds the subscriber connections and records deliveries.

It runs its own event loop (uvloop when installed) and obeys commands sent by
:class:`bench.pool.ClientPool` over a ``multiprocessing`` pipe, one reply per command:

``open``      connect and subscribe ``count`` clients (healthy, or *stalled*: subscribed, then
              reading paused with a small ``SO_RCVBUF``), bounded by a deadline;
``arm``       start a measurement expecting ``per_client`` deliveries on every healthy client;
``collect``   wait (bounded) for them; return latencies, first/last receive time, how many
              arrived, how many clients were closed and with which codes, and the worker's CPU
              share during the measurement (near 100 % means the *client* was the bottleneck);
``stall_report`` what happened to the stalled clients: the kernel TCP state seen while paused
              (e.g. ``CLOSE_WAIT`` = the server closed it), then reading is resumed to find the
              close code and how much the server had still queued;
``close``     drop every connection; ``quit`` ends the process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.dialects import Dialect, get_dialect
from bench.payload import Recorder
from bench.wsclient import ConnState, WsConn, connect, tcp_state

__all__ = ["worker_main"]

Reply = dict[str, Any]


@dataclass
class _Stalled:
    conn: WsConn
    states: list[tuple[float, str]] = field(default_factory=list)


class Worker:
    """State and command handlers of one worker process."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.healthy: list[WsConn] = []
        self.stalled: list[_Stalled] = []
        self._armed_at = 0.0
        self._cpu_at = 0.0
        self._watch: asyncio.Task[None] | None = None

    async def open(
        self, *, host: str, port: int, dialect: str, channel: str, count: int,
        stalled: bool = False, rcvbuf: int | None = None, per_client_s: float = 10.0,
        deadline_s: float = 60.0, concurrency: int = 100, spread_sources: bool = False,
    ) -> Reply:  # fmt: skip
        speaker = get_dialect(dialect)
        gate = asyncio.Semaphore(concurrency)
        errors: collections.Counter[str] = collections.Counter()
        started = time.monotonic()

        async def one(index: int) -> None:
            # 127.0.0.2-127.0.0.250: loopback answers for the whole 127/8 on Linux.
            source = f"127.0.0.{2 + index % 249}" if spread_sources else None
            async with gate, asyncio.timeout(per_client_s):
                conn = await connect(
                    host, port, speaker.subscriber_path, rcvbuf=rcvbuf, source=source
                )
                try:
                    await speaker.subscribe(conn, channel)
                except BaseException:
                    conn.abort()
                    raise
                self._adopt(conn, speaker, stalled)

        tasks = [asyncio.create_task(one(index)) for index in range(count)]
        done, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for task in pending:
            task.cancel()
            errors["deadline passed"] += 1
        for task in done:
            if (exc := task.exception()) is not None:
                errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
        if self.stalled and self._watch is None:
            self._watch = asyncio.create_task(self._watch_stalled())
        return {
            "opened": count - sum(errors.values()),
            "failed": sum(errors.values()),
            "errors": errors.most_common(3),
            "seconds": time.monotonic() - started,
        }

    def _adopt(self, conn: WsConn, speaker: Dialect, stalled: bool) -> None:
        if stalled:
            conn.pause_reading()
            self.stalled.append(_Stalled(conn))
        else:
            speaker.stream(conn, self.recorder)
            self.healthy.append(conn)

    async def _watch_stalled(self) -> None:
        """Poll the kernel's TCP state of each paused socket: it shows a server-side close."""
        while True:
            now = time.monotonic() - self._armed_at
            for entry in self.stalled:
                sock = entry.conn.socket()
                state = tcp_state(sock) if sock is not None else "GONE"
                if not entry.states or entry.states[-1][1] != state:
                    entry.states.append((round(now, 2), state))
            await asyncio.sleep(0.1)

    def arm(self, *, per_client: int) -> Reply:
        for conn in self.healthy:
            conn.received = 0
        self.recorder.arm(per_client * len(self.healthy))
        self._armed_at = time.monotonic()
        self._cpu_at = time.process_time()
        for entry in self.stalled:
            entry.states.clear()
        return {"armed": len(self.healthy)}

    async def collect(self, *, wait_s: float) -> Reply:
        rec = self.recorder
        if rec.done is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await asyncio.shield(rec.done)
        wall = time.monotonic() - self._armed_at
        cpu = time.process_time() - self._cpu_at
        codes = collections.Counter(
            str(c.close_code) for c in self.healthy if c.state is ConnState.CLOSED
        )
        counts = [c.received for c in self.healthy] or [0]
        return {
            "delivered": rec.total,
            "expected": rec.target,
            "latencies": rec.latencies.tobytes(),
            "first_ns": rec.first_ns,
            "last_ns": rec.last_ns,
            "wall": wall,
            "cpu": cpu,
            "closed": sum(codes.values()),
            "close_codes": dict(codes),
            "min_per_client": min(counts),
            "max_per_client": max(counts),
        }

    async def stall_report(self, *, drain_s: float) -> Reply:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        reports = []
        for entry in self.stalled:
            conn = entry.conn
            drained = Recorder()
            drained.arm(1 << 62)

            def count(payload: bytes, now: int, drained: Recorder = drained) -> None:
                drained.record(payload, now)

            conn.on_message = count
            conn.resume_reading()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain_s
            last = -1
            while loop.time() < deadline and not conn.lost.done() and drained.total != last:
                last = drained.total
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(1.0, max(deadline - loop.time(), 0.0))):
                        await asyncio.shield(conn.lost)
            reports.append({
                "tcp_states": entry.states,
                "close_code": conn.close_code,
                "close_reason": conn.close_reason,
                "drained": drained.total,
                "lost": conn.lost.done(),
            })  # fmt: skip
        return {"stalled": reports}

    def close(self) -> Reply:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        conns = self.healthy + [s.conn for s in self.stalled]
        for conn in conns:
            conn.abort()
        self.healthy, self.stalled = [], []
        self.recorder = Recorder()
        return {"closed": len(conns)}


async def _serve(pipe: Connection) -> None:
    worker = Worker()
    loop = asyncio.get_running_loop()
    while True:
        command, kwargs = await loop.run_in_executor(None, pipe.recv)
        if command == "quit":
            worker.close()
            pipe.send({"bye": True})
            return
        try:
            handler = getattr(worker, command)
            result = handler(**kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            pipe.send(result)
        except Exception as exc:  # report to the parent instead of dying silently
            pipe.send({"error": f"{command}: {type(exc).__name__}: {exc}"})


def worker_main(pipe: Connection, nofile: int) -> None:
    """Entry point of a worker process (``multiprocessing`` spawn target)."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(nofile, hard)), hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(pipe))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(pipe))
