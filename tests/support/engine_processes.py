"""Throwaway engine servers for the tests that stop, kill or restart one (the chaos tests, the
Redis shard and Sentinel tests): Redis, PostgreSQL and NATS, each its own process on an
ephemeral port of 127.0.0.1, in its own scratch directory.

The machine's shared services (Redis 6379, PostgreSQL 5432, NATS 4222) are never touched: a
test stops and starts only what it started here. Each class offers the same handful of
operations: ``start()``, ``stop()`` (graceful), ``kill()`` (SIGKILL), ``restart()`` (on the
same port) and ``close()`` (whatever state it is in, nothing is left running), plus ``url``,
the engine URL roomcast is given. Every wait is bounded; a server that does not come up or go
down in time raises :class:`EngineProcessError` with the tail of its log.

``missing_binary(kind)`` says which executable an engine lacks; ``require_engine(kind)`` hands
that reason to ``tests.support.ci`` (skip, or fail under ``CI=true``).
"""

from __future__ import annotations

import abc
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, ClassVar

import httpx

from tests.support.ci import missing

__all__ = [
    "ENGINE_KINDS",
    "EngineProcess",
    "EngineProcessError",
    "NatsProcess",
    "PostgresProcess",
    "RedisProcess",
    "create_engine",
    "free_port",
    "missing_binary",
    "require_engine",
]

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
"""The longest a server may take to answer after being started."""
STOP_TIMEOUT = 15.0
"""The longest a graceful stop may take before the server is killed."""


class EngineProcessError(RuntimeError):
    """An engine server did not start or stop within its bound."""


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _postgres_bin(name: str) -> str | None:
    """The newest ``/usr/lib/postgresql/<version>/bin/<name>``, else ``name`` on PATH."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return found[-1] if found else shutil.which(name)


def _refusing(port: int) -> bool:
    """True when nothing accepts connections on ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return False
    except OSError:
        return True


class EngineProcess(abc.ABC):
    """One engine server: started, stopped, killed and restarted by a test, on one port."""

    kind: ClassVar[str]

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.port = free_port()
        self.starts = 0
        self._log_path = scratch / f"{self.kind}.log"

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The engine URL for ``roomcast serve --engine``."""

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the server process is alive."""

    @abc.abstractmethod
    def _launch(self) -> None:
        """Start the server process (it may not answer yet)."""

    @abc.abstractmethod
    def _answers(self) -> bool:
        """Whether the server answers requests now (one quick probe)."""

    @abc.abstractmethod
    def _terminate(self) -> None:
        """Ask the server to shut down cleanly and wait, at most ``STOP_TIMEOUT``."""

    @abc.abstractmethod
    def _kill(self) -> None:
        """SIGKILL the server (and its children) and reap it."""

    def start(self) -> None:
        """Start the server and return once it answers; raises if it does not in time."""
        if self.running:
            return
        self._launch()
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._answers():
                return
            if not self.running:
                break
            time.sleep(0.02)
        self.close()
        raise EngineProcessError(f"{self.kind} on port {self.port} did not start:\n{self.log}")

    def stop(self) -> None:
        """Shut the server down cleanly (it writes what it keeps to disk), then wait until its
        port refuses connections; kills it when it takes longer than ``STOP_TIMEOUT``."""
        if self.running:
            try:
                self._terminate()
            except (subprocess.TimeoutExpired, EngineProcessError):
                self._kill()
                raise EngineProcessError(
                    f"{self.kind} on port {self.port} did not stop within {STOP_TIMEOUT}s "
                    f"and was killed:\n{self.log}"
                ) from None
        self._wait_port_closed()

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, what it did not write to disk is lost."""
        if self.running:
            self._kill()
        self._wait_port_closed()

    def restart(self, down: float = 0.0) -> None:
        """``stop()``, stay down ``down`` seconds, ``start()`` again on the same port."""
        self.stop()
        time.sleep(down)
        self.start()

    def close(self) -> None:
        """Leave nothing running, whatever the state; never raises."""
        with contextlib.suppress(Exception):
            if self.running:
                self._kill()

    @property
    def log(self) -> str:
        """The last lines the server wrote to its log."""
        try:
            lines = self._log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-40:])

    def _wait_port_closed(self) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        while not _refusing(self.port):
            if time.monotonic() > deadline:
                raise EngineProcessError(f"{self.kind} still listens on {self.port} after stop")
            time.sleep(0.02)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} running={self.running}>"


class _ChildProcess(EngineProcess):
    """An engine run as a direct child of the test process, in the foreground."""

    def __init__(self, scratch: Path) -> None:
        super().__init__(scratch)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _launch(self) -> None:
        if self._log_file is None:
            self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - kept for restarts
        self._process = subprocess.Popen(
            self._command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.scratch,
            start_new_session=True,  # Ctrl-C of the test run reaches it only through close()
        )

    def _terminate(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        self._process.wait(STOP_TIMEOUT)

    def _kill(self) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.wait(STOP_TIMEOUT)

    def close(self) -> None:
        super().close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class RedisProcess(_ChildProcess):
    """``redis-server`` on its own port.

    ``persistent`` (the default): an append-only file fsynced on every write, so a restart
    (graceful or not) finds every write Redis acknowledged. Otherwise nothing is saved and a
    restart starts empty: history, epochs and presence are gone.
    """

    kind = "redis"

    def __init__(self, scratch: Path, *, persistent: bool = True) -> None:
        super().__init__(scratch)
        self.persistent = persistent

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _command(self) -> list[str]:
        command = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", ""]
        command += ["--dir", str(self.scratch), "--protected-mode", "no"]
        if self.persistent:
            return [*command, "--appendonly", "yes", "--appendfsync", "always"]
        return [*command, "--appendonly", "no"]

    def _answers(self) -> bool:
        # "+PONG" once the data is loaded; "-LOADING ..." while it reads the append-only file.
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class NatsProcess(_ChildProcess):
    """``nats-server`` with JetStream kept on disk, so a restart keeps the streams; its
    monitoring port answers ``/healthz`` only once JetStream is ready."""

    kind = "nats"

    def __init__(self, scratch: Path) -> None:
        super().__init__(scratch)
        self.monitor_port = free_port()
        (scratch / "jetstream").mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def _command(self) -> list[str]:
        return [
            "nats-server",
            "-a",
            HOST,
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-js",
            "-sd",
            str(self.scratch / "jetstream"),
        ]

    def _answers(self) -> bool:
        try:
            url = f"http://{HOST}:{self.monitor_port}/healthz"
            return httpx.get(url, timeout=0.5).status_code == 200 and not _refusing(self.port)
        except httpx.HTTPError:
            return False

    def _wait_port_closed(self) -> None:
        super()._wait_port_closed()
        deadline = time.monotonic() + STOP_TIMEOUT
        while not _refusing(self.monitor_port) and time.monotonic() < deadline:
            time.sleep(0.02)


class PostgresProcess(_ChildProcess):
    """A PostgreSQL cluster of its own: ``initdb`` into a scratch directory, the ``postgres``
    server run in the foreground as a child of the test (so the test reaps it and a SIGKILL
    is a real crash), trust authentication on 127.0.0.1 and a unix socket in the scratch
    directory, ``fsync=off`` (a clean stop still writes everything; only an OS crash would
    lose data). The database ``roomcast`` is created on the first start.

    PostgreSQL refuses to run as root: when the tests do, every PostgreSQL program runs as the
    ``postgres`` OS user (``runuser`` for the one-shot tools, the server itself with the
    subprocess' own switch of user, so it stays the test's child) in a directory it owns.
    A graceful stop is PostgreSQL's "fast" shutdown (SIGINT): it closes the clients'
    sessions instead of waiting for them, and writes a checkpoint.
    """

    kind = "postgres"
    user = "postgres"
    database = "roomcast"

    def __init__(self, scratch: Path) -> None:
        # Not under pytest's tmp_path when root: its root is private to root (0700) and the
        # server runs as another user. A directory of its own under the system temp dir is.
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            scratch = Path(tempfile.mkdtemp(prefix="roomcast-chaos-pg-"))
            shutil.chown(scratch, "postgres", "postgres")
        super().__init__(scratch)
        self._data = scratch / "data"
        self._created = False

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/{self.database}"

    def _tool(self, name: str, *args: str) -> None:
        """Run PostgreSQL's program ``name`` to completion (bounded); raise on failure."""
        path = _postgres_bin(name)
        assert path is not None
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        done = subprocess.run(
            [*prefix, path, *args],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            cwd=self.scratch,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise EngineProcessError(
                f"{name} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def _command(self) -> list[str]:
        path = _postgres_bin("postgres")
        assert path is not None
        return [
            path, "-D", str(self._data), "-p", str(self.port), "-k", str(self.scratch),
            "-c", f"listen_addresses={HOST}", "-c", "fsync=off", "-c", "max_connections=200",
        ]  # fmt: skip

    def _launch(self) -> None:
        if not self._data.exists():
            self._tool("initdb", "-D", str(self._data), "-A", "trust", "-U", self.user, "--no-sync")
        if self._log_file is None:
            self._log_file = open(self._log_path, "ab")  # noqa: SIM115 - kept for restarts
        uid = gid = None
        if self._as_postgres:
            uid, gid = _postgres_ids()
            os.chown(self._log_path, uid, gid)
        self._process = subprocess.Popen(
            self._command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.scratch,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=[] if self._as_postgres else None,
            env={**os.environ, "HOME": str(self.scratch)} if self._as_postgres else None,
        )

    def start(self) -> None:
        super().start()
        if not self._created:
            self._tool("createdb", "-h", HOST, "-p", str(self.port), "-U", self.user, self.database)
            self._created = True

    def _answers(self) -> bool:
        path = _postgres_bin("pg_isready")
        assert path is not None
        try:
            done = subprocess.run(
                [path, "-q", "-h", HOST, "-p", str(self.port), "-t", "1"],
                timeout=3,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def _terminate(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)  # "fast" shutdown
        self._process.wait(STOP_TIMEOUT)

    def _kill(self) -> None:
        assert self._process is not None
        # The postmaster and every backend it forked: a crash takes the whole server down.
        children = _children(self._process.pid)
        self._process.kill()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        self._process.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(_alive(child) for child in children) and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        super().close()
        if self._as_postgres:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    children = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(stat).read_text().split(") ", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(Path(stat).parent.name))
    return children


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError, IndexError):
        return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    return False


ENGINE_KINDS = ("redis", "postgres", "nats")

_BINARIES = {
    "redis": ("redis-server",),
    "nats": ("nats-server",),
    "postgres": ("initdb", "postgres", "createdb", "pg_isready"),
}


def missing_binary(kind: str) -> str | None:
    """Why engine ``kind`` cannot be run here (a missing executable), or None."""
    for name in _BINARIES[kind]:
        found = _postgres_bin(name) if kind == "postgres" else shutil.which(name)
        if found is None:
            return f"{name} is not installed (needed to run a {kind} server of the test's own)"
    if kind == "postgres" and os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser to start PostgreSQL as the postgres user"
    return None


def require_engine(kind: str) -> None:
    """Go on only if engine ``kind`` can be run here (see ``tests.support.ci``)."""
    reason = missing_binary(kind)
    if reason is not None:
        missing(f"{reason}; `make system-deps` installs it")


def create_engine(kind: str, scratch: Path, *, persistent: bool = True) -> EngineProcess:
    """An unstarted engine server of ``kind`` ("redis", "postgres" or "nats")."""
    if kind == "redis":
        return RedisProcess(scratch, persistent=persistent)
    if kind == "postgres":
        return PostgresProcess(scratch)
    if kind == "nats":
        return NatsProcess(scratch)
    raise ValueError(f"unknown engine kind {kind!r}")
