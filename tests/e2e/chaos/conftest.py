"""Fixtures of the chaos tests: an engine server of the test's own
(``tests.support.engine_processes``) and two ``roomcast serve`` nodes on it, configured for the
official SDKs with a recovering namespace.

An engine whose server program is not installed, or that roomcast cannot use here (its driver
is missing, so ``roomcast.engines`` refuses the URL), is skipped with the reason, except under
``CI=true``, where that fails the test: ``tests.support.ci`` decides.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from roomcast.engines import create_broker, create_history_store, create_presence_store
from roomcast.errors import ConfigurationError
from tests.support.ci import missing
from tests.support.engine_processes import EngineProcess, create_engine, require_engine
from tests.support.server import RunningServer, start_server
from tests.support.server_log import log_problems
from tests.support.tokens import SECRET

API_KEY = "chaos-key"
NAMESPACE = "chaos"

NAMESPACES = [
    {
        "name": NAMESPACE,
        "allow_subscribe_for_client": True,
        "history_size": 3000,
        "history_ttl": "300s",
        "force_recovery": True,
        "allow_recovery": True,
    },
]


def node_env(engine_url: str) -> dict[str, str]:
    return {
        "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
        "ROOMCAST_ENGINE__URL": engine_url,
        "ROOMCAST_HTTP_API__KEY": API_KEY,
    }


def _unavailable_in_roomcast(url: str) -> str | None:
    """Why roomcast cannot use ``url`` for every role ``engine.url`` fills, or None."""
    for role, factory in (
        ("broker", create_broker),
        ("history store", create_history_store),
        ("presence store", create_presence_store),
    ):
        try:
            factory(url)
        except ConfigurationError as exc:
            return f"roomcast cannot make a {role} of {url.split(':', 1)[0]}:// here ({exc})"
    return None


@pytest.fixture
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineProcess]:
    """A started engine server of the kind named by the test's parameter ("redis",
    "redis-volatile", "postgres" or "nats"); stopped (or killed) afterwards, whatever
    happened."""
    name: str = request.param
    kind = name.split("-", 1)[0]
    require_engine(kind)
    (tmp_path / name).mkdir()
    server = create_engine(kind, tmp_path / name, persistent=name != "redis-volatile")
    refused = _unavailable_in_roomcast(server.url)
    if refused is not None:
        server.close()
        missing(refused)
    try:
        server.start()
        yield server
    finally:
        server.close()


@dataclass
class Nodes:
    """Two ``roomcast serve`` processes on one engine: the publisher talks to ``a``, the
    subscribers to ``b`` (test 2 kills ``b``)."""

    a: RunningServer
    b: RunningServer

    @property
    def both(self) -> tuple[RunningServer, RunningServer]:
        return self.a, self.b


@pytest.fixture
def nodes(engine: EngineProcess, tmp_path: Path) -> Iterator[Nodes]:
    """Nodes A and B on ``engine``, started side by side; stopped afterwards. The test fails
    if either logged an error, or a traceback other than for an unreachable engine (see
    ``log_problems``)."""
    env = node_env(engine.url)
    started: list[RunningServer] = []
    lock = threading.Lock()

    def start(name: str) -> RunningServer:
        cwd = tmp_path / f"node-{name}"
        cwd.mkdir()
        server = start_server("--no-examples", env=env, cwd=cwd)
        with lock:
            started.append(server)
        return server

    try:
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(start, ("a", "b"))
        yield Nodes(a, b)
    finally:
        for server in started:
            server.stop()
    for name, server in zip("ab", (a, b), strict=True):
        problems = log_problems(server.log)
        assert problems == [], f"node {name}:\n" + "\n".join(problems)
