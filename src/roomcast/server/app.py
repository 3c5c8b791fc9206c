"""The ASGI app each ``roomcast serve`` worker runs.

A Hub with its routes, the HTTP server API (``/api``) and ``/metrics``, the admin UI
(``/admin``) when ``admin.enabled``, plus the seed endpoints and their chat page unless
``examples.enabled`` is off. ``/connection/websocket`` bypasses FastAPI:
:class:`DirectClientEndpoint` routes it straight to the client endpoint. In front of both, the
:class:`~roomcast.server.shutdown.DrainGate` refuses WebSocket handshakes while the worker
drains, and the lifespan installs the drain on SIGTERM and Ctrl-C
(:mod:`roomcast.server.shutdown`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from roomcast.admin import admin_router
from roomcast.api import server_api_router
from roomcast.api.metrics import metrics_router
from roomcast.hub import Hub
from roomcast.server.gc_tuning import tune_garbage_collector
from roomcast.server.seeds import seed_router
from roomcast.server.shutdown import DrainGate, GracefulShutdown
from roomcast.settings import RESOLVED_SETTINGS_ENV, Settings
from roomcast.sockets import ConnectionManager
from roomcast.transport.client_endpoint import DirectClientEndpoint

__all__ = ["SETTINGS_ENV", "app_from_environment", "create_app"]

SETTINGS_ENV = RESOLVED_SETTINGS_ENV
"""Environment variable through which ``roomcast serve`` hands its settings to each worker."""


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app of one worker: hub routes, server API and metrics, and the seed
    endpoints if ``settings.examples.enabled``. Its lifespan starts and stops the hub."""
    hub = Hub(settings)
    app = FastAPI(title="roomcast", lifespan=hub.lifespan, docs_url=None, redoc_url=None)
    app.state.hub = hub
    app.include_router(hub.router)
    app.include_router(server_api_router(hub))
    app.include_router(metrics_router(hub))
    if settings.admin.enabled:
        app.include_router(admin_router(hub))
    if settings.examples.enabled:
        app.include_router(seed_router(ConnectionManager(hub), settings))
    return app


def app_from_environment() -> DrainGate:
    """uvicorn factory for ``roomcast serve``'s workers: settings as the CLI resolved them
    (``SETTINGS_ENV``; else loaded anew), client connections routed around FastAPI, the
    garbage collector tuned and the graceful shutdown installed once the hub has started."""
    resolved = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(resolved) if resolved else Settings.load()
    app = create_app(settings)
    hub_lifespan = app.router.lifespan_context
    hub: Hub = app.state.hub

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with hub_lifespan(app):
            tune_garbage_collector()
            GracefulShutdown(hub.drain, supervised=settings.workers > 1).install()
            yield

    app.router.lifespan_context = lifespan
    return DrainGate(DirectClientEndpoint(app, hub.services), hub.drain)
