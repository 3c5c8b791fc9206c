"""Hub, as an embedding app makes it: what it says about the settings it is given."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from roomcast.hub import Hub
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


def test_once_its_drain_begins_an_embedded_hub_is_unready_and_refuses_new_clients() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from starlette.testclient import WebSocketDenialResponse

    hub = Hub(Settings.load(client={"insecure": True}, shutdown={"timeout": 5}))
    app = FastAPI(lifespan=hub.lifespan)
    app.include_router(hub.router)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        with client.websocket_connect("/connection/websocket") as ws:
            ws.send_text('{"id": 1, "connect": {}}')
            assert json.loads(ws.receive_text())["id"] == 1
        assert hub.drain.timeout == 5
        hub.drain.begin()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "not ready",
            "reason": "draining: the server is shutting down",
        }
        with pytest.raises(WebSocketDenialResponse) as refused:
            client.websocket_connect("/connection/websocket").__enter__()
        assert refused.value.status_code == 503
        assert refused.value.headers["retry-after"] == "1"
        assert client.get("/healthz").status_code == 200
