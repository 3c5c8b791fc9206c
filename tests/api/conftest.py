"""Fixtures of the server API tests: real ``roomcast serve`` processes, ``cent`` clients of
their API and raw protocol clients of their WebSocket endpoint.

``server`` runs with ``--insecure`` (clients connect anonymously, user "") and the API key
``k``; ``history_server`` adds the namespace ``feed`` (history in SQLite, presence).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest
from cent import AsyncClient

from tests.support.api_calls import FEED, KEY
from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import TIMEOUT


@pytest.fixture(scope="module")
def api_server() -> Iterator[RunningServer]:
    server = start_server("--api-key", KEY, "--insecure", "--no-examples")
    yield server
    server.stop()


@pytest.fixture
def server(api_server: RunningServer) -> Iterator[RunningServer]:
    """The API server; the test fails if it logged a traceback meanwhile."""
    before = len(api_server.log)
    yield api_server
    written = api_server.log[before:]
    assert "Traceback" not in written, written


@pytest.fixture
async def cent(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{server.http}/api", KEY, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
async def ws(server: RunningServer) -> AsyncIterator[ProtocolClient]:
    async with protocol_client(server.ws) as client:
        yield client


@pytest.fixture(scope="module")
def history_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("history")
    env = {
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([FEED]),
        "ROOMCAST_ENGINE__HISTORY": f"sqlite:///{data}/history.sqlite3",
    }
    server = start_server("--api-key", KEY, "--insecure", "--no-examples", env=env)
    yield server
    server.stop()
    assert "Traceback" not in server.log


@pytest.fixture
async def history_cent(history_server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{history_server.http}/api", KEY, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
async def history_ws(history_server: RunningServer) -> AsyncIterator[ProtocolClient]:
    async with protocol_client(history_server.ws) as client:
        yield client
