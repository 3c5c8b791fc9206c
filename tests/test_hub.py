"""Hub, as an embedding app makes it: what it says about the settings it is given."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from roomcast.hub import CLIENT_PATH, Hub
from roomcast.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ROOMCAST_"):
            monkeypatch.delenv(name)


def test_a_hub_warns_once_per_key_its_settings_do_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"client": {"insecure": True, "allowed_origin": ["x"]}}))
    with caplog.at_level(logging.WARNING, logger="roomcast.hub"):
        Hub(Settings.load(config_file=path))
    warnings = [r.getMessage() for r in caplog.records if r.name == "roomcast.hub"]
    assert warnings == [
        f"unknown config key client.allowed_origin in config file {path}: roomcast does not "
        "read it, so it has no effect"
    ]


def test_a_hub_with_clean_settings_warns_about_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="roomcast.hub"):
        Hub(Settings.load(client={"insecure": True}))
    assert [r for r in caplog.records if r.name == "roomcast.hub"] == []


async def handshake_answer(app: Any) -> list[dict[str, Any]]:
    """What ``app`` sends for a WebSocket opening at the client path (a server offering ASGI's
    denial response), until it accepts or refuses."""
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    incoming.put_nowait({"type": "websocket.connect"})

    async def send(event: dict[str, Any]) -> None:
        sent.append(event)
        if event["type"] in ("websocket.accept", "websocket.http.response.body"):
            done.set()

    scope = {
        "type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": CLIENT_PATH,
        "raw_path": CLIENT_PATH.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"test")], "client": ("127.0.0.1", 50000),
        "server": ("test", 80), "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }  # fmt: skip
    running = asyncio.create_task(app(scope, incoming.get, send))
    await asyncio.wait_for(done.wait(), 5)
    incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(running, 5)
    return sent


async def test_once_its_drain_begins_an_embedded_hub_is_unready_and_refuses_new_clients() -> None:
    hub = Hub(Settings.load(client={"insecure": True}, shutdown={"timeout": 5}))
    app = FastAPI()
    app.include_router(hub.router)
    await hub.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert [e["type"] for e in await handshake_answer(app)] == ["websocket.accept"]
            assert hub.drain.timeout == 5
            hub.drain.begin()
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json() == {
                "status": "not ready",
                "reason": "draining: the server is shutting down",
            }
            start, body = await handshake_answer(app)
            assert start["status"] == 503
            assert (b"retry-after", b"1") in start["headers"]
            assert body["body"] == b"draining: the server is shutting down"
            assert (await client.get("/healthz")).status_code == 200
    finally:
        await hub.stop()
