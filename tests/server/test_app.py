"""The worker app of ``roomcast serve``, built and driven in-process over ASGI: what it serves,
and what the uvicorn factory adds (the CLI's settings, the direct client endpoint, the
garbage-collector tuning)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import roomcast.server.app
from roomcast.api import API_PREFIX
from roomcast.server.app import SETTINGS_ENV, app_from_environment, create_app
from roomcast.server.shutdown import DrainGate
from roomcast.settings import Settings
from roomcast.transport.client_endpoint import DirectClientEndpoint
from roomcast.transport.close_codes import CloseCode

TIMEOUT = 5.0

Event = MutableMapping[str, Any]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ROOMCAST_"):
            monkeypatch.delenv(name)


def http_client(app: FastAPI) -> httpx.AsyncClient:
    """A client for ``app`` that skips its lifespan: the routes answer, the hub is not started."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def websocket_answer(app: FastAPI, path: str) -> str:
    """How ``app`` answers a WebSocket opening at ``path``: ``websocket.accept`` or
    ``websocket.close``. The client then leaves, and the app must finish."""
    incoming: asyncio.Queue[Event] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def send(event: Event) -> None:
        if not answer.done():
            answer.set_result(event["type"])

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
        "subprotocols": [],
        "extensions": {},
    }
    running = asyncio.get_running_loop().create_task(app(scope, incoming.get, send))
    try:
        return await asyncio.wait_for(answer, TIMEOUT)
    finally:
        incoming.put_nowait({"type": "websocket.disconnect", "code": CloseCode.NORMAL_CLOSURE})
        await asyncio.wait_for(running, TIMEOUT)


async def assert_hub_api_and_metrics_served(app: FastAPI) -> None:
    async with http_client(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/metrics")).status_code == 200
        # No key is configured, so the API refuses the call; but it is there to refuse it.
        assert (await client.post(f"{API_PREFIX}/info", json={})).status_code == 401


async def test_the_app_serves_the_seeds_the_hub_the_api_and_metrics() -> None:
    app = create_app(Settings(examples={"enabled": True}))
    async with http_client(app) as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert "<title>roomcast chat</title>" in page.text
    assert await websocket_answer(app, "/ws/echo") == "websocket.accept"
    await assert_hub_api_and_metrics_served(app)


async def test_without_examples_the_app_serves_no_seed_endpoint() -> None:
    app = create_app(Settings(examples={"enabled": False}))
    async with http_client(app) as client:
        assert (await client.get("/")).status_code == 404
    for path in ("/ws/echo", "/ws/chat", "/ws/1", "/ws/stream"):
        assert await websocket_answer(app, path) == "websocket.close", path
    await assert_hub_api_and_metrics_served(app)


def test_the_factory_takes_the_settings_the_cli_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = Settings(examples={"enabled": False}, client={"queue_max_size": 12345})
    monkeypatch.setenv(SETTINGS_ENV, resolved.model_dump_json())
    gate = app_from_environment()
    assert isinstance(gate, DrainGate)
    endpoint = gate.app
    assert isinstance(endpoint, DirectClientEndpoint)
    assert endpoint.services.settings == resolved
    assert endpoint.services is endpoint.app.state.hub.services
    assert gate.drain is endpoint.app.state.hub.drain


async def test_the_factory_tunes_the_collector_once_the_hub_has_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker_connected_at_tuning: list[bool] = []
    monkeypatch.setenv(SETTINGS_ENV, Settings().model_dump_json())
    gate = app_from_environment()
    assert isinstance(gate.app, DirectClientEndpoint)
    app = gate.app.app
    assert isinstance(app, FastAPI)
    monkeypatch.setattr(
        roomcast.server.app,
        "tune_garbage_collector",
        lambda: broker_connected_at_tuning.append(app.state.hub.node.broker.connected),
    )
    assert broker_connected_at_tuning == []
    async with app.router.lifespan_context(app):
        assert broker_connected_at_tuning == [True]
    assert broker_connected_at_tuning == [True]
