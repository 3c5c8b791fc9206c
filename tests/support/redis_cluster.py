"""A real Redis Cluster of the test run's own: three masters and three replicas, each a
``redis-server --cluster-enabled yes`` on free ports of 127.0.0.1 (client and bus ports both
chosen, so none passes 65535), joined by ``redis-cli --cluster create --cluster-replicas 1``,
with nothing saved to disk.

One cluster serves the whole run: the session-scoped fixture :func:`redis_cluster` (the root
conftest makes it available everywhere), or :func:`shared_cluster` for code that is not a
fixture (the engine factories), start it on first use; the root conftest's
``pytest_sessionfinish`` tears it down, and ``atexit`` does if that never runs.
Tests keep apart by key prefix, as on the machine's Redis. ``failover(master)`` promotes that
master's replica with ``CLUSTER FAILOVER`` (no write the master acknowledged is lost) and
returns once every node agrees on the new master; ``kill(master)`` SIGKILLs it and returns
once the cluster promoted the replica by itself, and ``revive(node)`` brings it back as a
replica, so the next test finds the cluster whole. Every wait is bounded; a cluster that does
not form in time raises :class:`EngineProcessError` with the tail of the logs.

Missing ``redis-server`` or ``redis-cli``: :func:`require_cluster` skips, or fails under
``CI=true`` (``tests.support.ci``).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from tests.support.ci import missing, require_module
from tests.support.engine_processes import HOST, EngineProcessError, free_port

__all__ = [
    "ClusterNode",
    "RedisClusterProcess",
    "close_shared_cluster",
    "redis_cluster",
    "require_cluster",
    "shared_cluster",
]

FORM_TIMEOUT = 60.0
"""The longest the six servers may take to start and agree on ``cluster_state:ok``."""
FAILOVER_TIMEOUT = 30.0


def _command(port: int, *args: str, timeout: float = 5.0) -> str:
    """``redis-cli -p port args...``'s output; raises on a failure or a timeout."""
    done = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise EngineProcessError(f"redis-cli -p {port} {' '.join(args)}: {done.stderr}")
    return done.stdout


class ClusterNode:
    """One ``redis-server`` of the cluster."""

    def __init__(self, scratch: Path) -> None:
        self.port = free_port()
        self.bus_port = free_port()
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = open(scratch / "redis.log", "ab")  # noqa: SIM115 - kept open
        self._process = self._launch()

    def _launch(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", HOST,
                "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
                "--cluster-config-file", str(self.scratch / "nodes.conf"),
                "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
                "--dir", str(self.scratch), "--protected-mode", "no",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.scratch,
            start_new_session=True,
        )  # fmt: skip

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def kill(self) -> None:
        """SIGKILL: nothing saved, no goodbye to the cluster."""
        self._process.kill()
        self._process.wait(10)

    def restart(self) -> None:
        """Start again on the same ports with the same cluster identity (``nodes.conf``)."""
        if not self.running:
            self._process = self._launch()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def info(self, section: str) -> dict[str, str]:
        """``CLUSTER INFO`` or ``INFO <section>`` as a dict."""
        args = ("cluster", "info") if section == "cluster" else ("info", section)
        lines = _command(self.port, *args).splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def role(self) -> str:
        return self.info("replication").get("role", "?")

    def answers(self) -> bool:
        try:
            return _command(self.port, "ping", timeout=1.0).strip() == "PONG"
        except (EngineProcessError, subprocess.TimeoutExpired):
            return False

    @property
    def log(self) -> str:
        lines = (self.scratch / "redis.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-15:])

    def close(self) -> None:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.kill()
        self._log.close()


class RedisClusterProcess:
    """Three masters, three replicas, formed and ``cluster_state:ok`` when the constructor
    returns (else it raises :class:`EngineProcessError` and leaves nothing running)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.nodes = [ClusterNode(scratch / f"node-{i}") for i in range(6)]
        try:
            self._form()
        except BaseException:
            self.close()
            raise

    def url(self, prefix: str = "", scheme: str = "redis+cluster") -> str:
        """The engine URL naming every master as a seed, under ``prefix``."""
        seeds = ",".join(node.address for node in self.nodes[:3])
        return f"{scheme}://{seeds}" + (f"?prefix={prefix}" if prefix else "")

    def _form(self) -> None:
        deadline = time.monotonic() + FORM_TIMEOUT
        for node in self.nodes:
            self._until(node.answers, f"{node.address} answers", deadline)
        _command(
            self.nodes[0].port,
            "--cluster", "create", *(node.address for node in self.nodes),
            "--cluster-replicas", "1", "--cluster-yes",
            timeout=FORM_TIMEOUT,
        )  # fmt: skip
        self._until(self._settled, "cluster_state:ok on every node", deadline)

    def _settled(self) -> bool:
        """Every node says ok and knows every slot; three masters with a replica each."""
        try:
            infos = [node.info("cluster") for node in self.nodes]
            roles = [node.role() for node in self.nodes]
        except (EngineProcessError, subprocess.TimeoutExpired):
            return False
        replicas = [node for node, role in zip(self.nodes, roles, strict=True) if role == "slave"]
        return (
            all(i.get("cluster_state") == "ok" for i in infos)
            and all(i.get("cluster_slots_ok") == "16384" for i in infos)
            and all(i.get("cluster_known_nodes") == "6" for i in infos)
            and roles.count("master") == 3
            and all(self._replica_linked(node) for node in replicas)
        )

    @staticmethod
    def _replica_linked(node: ClusterNode) -> bool:
        return node.info("replication").get("master_link_status") == "up"

    def masters(self) -> list[ClusterNode]:
        """The masters that answer now."""
        found = []
        for node in self.nodes:
            with contextlib.suppress(EngineProcessError, subprocess.TimeoutExpired):
                if node.role() == "master":
                    found.append(node)
        return found

    def master_of(self, key: str) -> ClusterNode:
        """The master that owns ``key``'s slot now."""
        from redis.crc import key_slot  # the driver is optional: imported when used

        slot = key_slot(key.encode())
        for node in self.masters():
            for line in _command(node.port, "cluster", "nodes").splitlines():
                fields = line.split()
                if "myself" not in fields[2]:
                    continue
                for span in fields[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return node
        raise EngineProcessError(f"no master owns slot {slot} of {key!r}")

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        for node in self.nodes:
            info = node.info("replication")
            if info.get("role") == "slave" and info.get("master_port") == str(master.port):
                return node
        raise EngineProcessError(f"{master.address} has no replica")

    def failover(self, master: ClusterNode) -> ClusterNode:
        """Promote ``master``'s replica (``CLUSTER FAILOVER``: it waits until it has every
        write the master took) and return it once the cluster settled on it."""
        replica = self.replica_of(master)
        _command(replica.port, "cluster", "failover")
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        self._until(lambda: replica.role() == "master", "the promoted replica", deadline)
        self._until(self._settled, "cluster_state:ok after the failover", deadline)
        return replica

    def kill(self, master: ClusterNode) -> ClusterNode:
        """SIGKILL ``master`` and return its replica once the cluster promoted it by itself
        (after ``--cluster-node-timeout``, 2 s); :meth:`revive` brings ``master`` back."""
        replica = self.replica_of(master)
        master.kill()
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        self._until(lambda: replica.role() == "master", "a replica promoted by itself", deadline)
        self._until(
            lambda: replica.info("cluster").get("cluster_state") == "ok",
            "cluster_state:ok without the killed master",
            deadline,
        )
        return replica

    def revive(self, node: ClusterNode) -> None:
        """Restart a killed ``node``; returns once it rejoined (as a replica) and the cluster
        settled with six nodes again."""
        node.restart()
        deadline = time.monotonic() + FORM_TIMEOUT
        self._until(node.answers, f"{node.address} answers again", deadline)
        self._until(self._settled, "the cluster whole again", deadline)

    def _until(self, condition: object, what: str, deadline: float) -> None:
        assert callable(condition)
        while not condition():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.address}\n{n.log}" for n in self.nodes)
                raise EngineProcessError(f"Redis Cluster: no {what} in time\n{logs}")
            time.sleep(0.1)

    def delete(self, prefix: str) -> None:
        """Delete every key under ``prefix`` on every master (each master its own keys)."""
        import redis

        for node in self.masters():
            client = redis.Redis(host=HOST, port=node.port, socket_timeout=10.0)
            try:
                with client.pipeline(transaction=False) as pipe:
                    for key in client.scan_iter(match=prefix + "*", count=1000):
                        pipe.unlink(key)
                    pipe.execute()
            finally:
                client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()


_lock = threading.Lock()
_shared: RedisClusterProcess | None = None
_scratch: str | None = None


def require_cluster() -> None:
    """Go on only if ``redis-server``, ``redis-cli`` and the redis driver are installed
    (``tests.support.ci`` decides otherwise)."""
    require_module("redis", hint="pip install 'roomcast[redis]'")
    for program in ("redis-server", "redis-cli"):
        if shutil.which(program) is None:
            missing(f"{program} is not installed (needed to run a Redis Cluster of the tests' own)")


def shared_cluster() -> RedisClusterProcess:
    """The run's cluster, started on the first call (which waits until it formed)."""
    global _shared, _scratch
    require_cluster()
    with _lock:
        if _shared is None:
            _scratch = tempfile.mkdtemp(prefix="roomcast-redis-cluster-")
            _shared = RedisClusterProcess(Path(_scratch))
            atexit.register(close_shared_cluster)
        return _shared


def close_shared_cluster() -> None:
    """Stop the run's cluster, if one was started, and remove its files."""
    global _shared, _scratch
    with _lock:
        if _shared is not None:
            _shared.close()
            _shared = None
        if _scratch is not None:
            shutil.rmtree(_scratch, ignore_errors=True)
            _scratch = None


@pytest.fixture(scope="session")
def redis_cluster() -> RedisClusterProcess:
    """The run's Redis Cluster (skips, or fails under ``CI=true``, without redis-server)."""
    return shared_cluster()
