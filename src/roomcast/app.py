"""The standalone server's ASGI app: the hub, its routes and the seed examples."""

from __future__ import annotations

import os

from fastapi import FastAPI

from roomcast.api import server_api_router
from roomcast.examples import seed_router
from roomcast.hub import Hub
from roomcast.settings import Settings

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
    if settings.examples.enabled:
        app.include_router(seed_router(hub.node, settings))
    return app


def app_from_environment() -> FastAPI:
    """uvicorn factory for worker processes: settings as resolved by the CLI, else loaded anew."""
    resolved = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(resolved) if resolved else Settings.load()
    return create_app(settings)
