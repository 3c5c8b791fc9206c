"""An app embedding a Hub, with the server API and an RPC method, for the Protobuf SDK tests.

Run it with ``uvicorn tests.support.binary_app:app``; its settings come from ``ROOMCAST_*``
variables as ``roomcast serve``'s do. The RPC method ``echo`` answers what it was given: the
decoded JSON, or the bytes themselves when a Protobuf client sent bytes that are not JSON (which
a Protobuf client gets back as those bytes). ``kind`` answers the Python type it was given.

``/sdk-page`` is an empty page that loads the npm SDK's protobuf bundle from
``tests/e2e/js/node_modules`` (``/sdk/centrifuge.protobuf.js``), for the browser tests: a page
the server itself serves, as an app's would be (Chromium lets only such a page reach loopback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from roomcast import ClientContext, Hub, Settings
from roomcast.api import server_api_router

__all__ = ["app", "hub"]

_BUNDLE = (
    Path(__file__).resolve().parents[1]
    / "e2e/js/node_modules/centrifuge/dist/centrifuge.protobuf.js"
)

hub = Hub(Settings.load())
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)
app.include_router(server_api_router(hub))


@hub.rpc("echo")
async def echo(client: ClientContext, data: Any) -> Any:
    return data


@hub.rpc("kind")
async def kind(client: ClientContext, data: Any) -> str:
    return type(data).__name__


@app.get("/sdk-page")
async def sdk_page() -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><script src="/sdk/centrifuge.protobuf.js"></script><p>protobuf SDK'
    )


@app.get("/sdk/centrifuge.protobuf.js")
async def sdk_bundle() -> FileResponse:
    return FileResponse(_BUNDLE, media_type="text/javascript")
