"""The standalone server's ASGI app: the hub, its routes and the seed examples."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from roomcast.api import server_api_router
from roomcast.api.metrics import metrics_router
from roomcast.hub import Hub
from roomcast.server.gc_tuning import tune_garbage_collector
from roomcast.server.seeds import seed_router
from roomcast.settings import Settings
from roomcast.transport.client_endpoint import DirectClientEndpoint

__all__ = ["SETTINGS_ENV", "app_from_environment", "create_app"]

SETTINGS_ENV = "ROOMCAST_RESOLVED_SETTINGS"
"""Environment variable through which ``roomcast serve`` hands its settings to each worker."""


def create_app(settings: Settings) -> FastAPI:
    """The app ``roomcast serve`` runs: hub routes, plus the seed endpoints if enabled."""
    hub = Hub(settings)
    app = FastAPI(title="roomcast", lifespan=hub.lifespan, docs_url=None, redoc_url=None)
    app.state.hub = hub
    app.include_router(hub.router)
    app.include_router(server_api_router(hub))
    app.include_router(metrics_router(hub))
    if settings.examples.enabled:
        app.include_router(seed_router(hub.node, settings))
    return app


def app_from_environment() -> DirectClientEndpoint:
    """uvicorn factory for ``roomcast serve``'s workers: settings as the CLI resolved them
    (else loaded anew), and the process tuned for a hub once the app has started."""
    resolved = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(resolved) if resolved else Settings.load()
    app = create_app(settings)
    hub_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with hub_lifespan(app):
            tune_garbage_collector()
            yield

    app.router.lifespan_context = lifespan
    hub: Hub = app.state.hub
    return DirectClientEndpoint(app, hub.services)
