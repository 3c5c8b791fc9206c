"""A FastAPI app embedding a Hub whose RPC method ``connect_details`` answers what the calling
client said about itself in its connect command (``ClientContext.connect``):
``uvicorn tests.support.connect_details_app:app`` with
``ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY`` set for connection tokens.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from roomcast import ClientContext, Hub, Settings

__all__ = ["app", "hub"]

hub = Hub(Settings.load())
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)


@hub.rpc("connect_details")
async def connect_details(client: ClientContext, data: Any) -> dict[str, Any]:
    """The connect's headers, name, version and data, as the hooks see them."""
    details = client.connect
    return {
        "user": client.user,
        "headers": dict(details.headers),
        "name": details.name,
        "version": details.version,
        "data": details.data,
    }
