"""Start, watch and stop one server under test as a subprocess.

Memory and CPU come from ``/proc``: ``VmRSS`` / ``VmHWM`` (peak RSS) in ``/proc/PID/status``
and ``utime + stime`` in ``/proc/PID/stat``, summed over the process and its descendants (a
server may fork workers). The peak can be reset with ``/proc/PID/clear_refs`` so each phase
reports its own; when that is refused, a 50 ms sampler of ``VmRSS`` stands in.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from bench.targets import Target

__all__ = [
    "SCRATCH",
    "RssSampler",
    "ServerError",
    "ServerProcess",
    "free_port",
    "tree_cpu_seconds",
]

ROOT = Path(__file__).resolve().parent.parent
"""The directory that holds the ``bench`` package: servers must be able to import it."""
_CLK_TCK = os.sysconf("SC_CLK_TCK")
SCRATCH = "{scratch}"
"""Written in a target's env value, stands for the server's scratch directory (``isolated_cwd``)."""


class ServerError(RuntimeError):
    """A server did not start, or died; the message carries the tail of its log."""


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    return pids


def tree_cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """User + system CPU time consumed so far by ``pid`` (all threads) and its live
    descendants; with ``reaped``, also by the descendants that exited and were waited for (a
    server stopped meanwhile)."""
    total = 0
    for member in _tree(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
            if reaped:  # cutime + cstime: children waited for, with their own reaped ones
                total += int(fields[13]) + int(fields[14])
        except (OSError, IndexError, ValueError):
            continue
    return total / _CLK_TCK


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class ServerProcess:
    """One running server; use ``async with ServerProcess(target) as server``."""

    def __init__(
        self, target: Target, start_timeout: float = 30.0, cpus: set[int] | None = None
    ) -> None:
        self.target = target
        self.cpus = cpus
        self.port = free_port()
        self.start_timeout = start_timeout
        self._proc: asyncio.subprocess.Process | None = None
        # Lives as long as this object: read on failure to show the server's last words.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._cwd: tempfile.TemporaryDirectory[str] | None = None
        self.stopped = False
        """Whether :meth:`stop` was called (a scenario may stop its server to time that)."""

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError("server not started")
        return self._proc.pid

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Launch the server and wait (bounded) until its port accepts connections."""
        cwd = str(ROOT)
        if self.target.isolated_cwd:
            self._cwd = tempfile.TemporaryDirectory(prefix=f"bench-{self.target.name}-")
            cwd = self._cwd.name
        # "{scratch}" in the target's env: its scratch directory (an absolute path, for URLs).
        env = {**os.environ, **{k: v.replace(SCRATCH, cwd) for k, v in self.target.env.items()}}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self._proc = await asyncio.create_subprocess_exec(
            *self.target.command(self.port),
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )  # fmt: skip
        if self.cpus:
            with contextlib.suppress(OSError):  # inherited by its threads and children
                os.sched_setaffinity(self._proc.pid, self.cpus)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                raise ServerError(
                    f"{self.target.name} exited with {self._proc.returncode}"
                    f" during start-up:\n{self.log_tail()}"
                )
            try:
                async with asyncio.timeout(1.0):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        await self.stop()
        raise ServerError(
            f"{self.target.name} did not listen on port {self.port} within "
            f"{self.start_timeout:.0f} s:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then SIGKILL (the whole process tree) after ``grace`` seconds; idempotent."""
        self.stopped = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            tree = _tree(proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
            except TimeoutError:
                for pid in reversed(tree):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await proc.wait()
        if self._cwd is not None:
            self._cwd.cleanup()
            self._cwd = None

    def log_tail(self, size: int = 2000) -> str:
        self._log.seek(0, os.SEEK_END)
        end = self._log.tell()
        self._log.seek(max(end - size, 0))
        return self._log.read().decode(errors="replace")

    def rss_kb(self) -> int:
        """Current resident memory of the server's process tree, in KiB."""
        return sum(_status_kb(pid, "VmRSS:") for pid in _tree(self.pid))

    def peak_rss_kb(self) -> int:
        """Peak resident memory (``VmHWM``) since start or the last :meth:`reset_peak`, KiB."""
        return sum(_status_kb(pid, "VmHWM:") for pid in _tree(self.pid))

    def reset_peak(self) -> bool:
        """Reset ``VmHWM`` to the current RSS; False if the kernel refused."""
        ok = True
        for pid in _tree(self.pid):
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                ok = False
        return ok

    def cpu_seconds(self) -> float:
        """User + system CPU time consumed so far by the server's process tree."""
        return tree_cpu_seconds(self.pid)


class RssSampler:
    """Samples a server's RSS every ``interval`` seconds; ``peak_kb`` is the highest seen."""

    def __init__(self, server: ServerProcess, interval: float = 0.05) -> None:
        self.server = server
        self.interval = interval
        self.peak_kb = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak_kb = max(self.peak_kb, self.server.rss_kb())
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> RssSampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.peak_kb = max(self.peak_kb, self.server.rss_kb())
