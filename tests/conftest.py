"""Shared fixtures: a real ``roomcast serve`` with the seed examples, tuned for fast tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_cluster import close_shared_cluster, redis_cluster
from tests.support.server import RunningServer, start_server

__all__ = ["redis_cluster"]  # the session's Redis Cluster, a fixture of every test

SEED_ENV = {
    "ROOMCAST_EXAMPLES__STREAM_INTERVAL": "0.05",
    "ROOMCAST_EXAMPLES__CLOCK_INTERVAL": "0.3",
    "ROOMCAST_WEBSOCKET__MESSAGE_SIZE_LIMIT": "16384",
    "ROOMCAST_CLIENT__QUEUE_MAX_SIZE": "262144",
}


@pytest.fixture(scope="module")
def seed_server() -> Iterator[RunningServer]:
    """One server per test module, serving the seed endpoints."""
    server = start_server(env=SEED_ENV)
    yield server
    server.stop()


@pytest.fixture
def clean_log(seed_server: RunningServer) -> Iterator[RunningServer]:
    """The seed server; the test fails if the server logged a traceback meanwhile."""
    before = len(seed_server.log)
    yield seed_server
    written = seed_server.log[before:]
    assert "Traceback" not in written, written


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the run's Redis Cluster, if a test started it."""
    close_shared_cluster()
