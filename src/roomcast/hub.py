"""Hub: roomcast inside a FastAPI app — a Node, its engines, its routes and its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from roomcast.engines import create_broker
from roomcast.node import Node
from roomcast.publication import Publication
from roomcast.settings import Settings

__all__ = ["Hub"]

logger = logging.getLogger("roomcast.hub")


class Hub:
    """Everything roomcast needs inside one app process.

    Use::

        hub = Hub(Settings.load())
        app = FastAPI(lifespan=hub.lifespan)
        app.include_router(hub.router)
        ...
        await hub.publish("orders:42", {"status": "paid"})

    Raises:
        ConfigurationError: the settings name an engine that cannot be used.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings.load()
        self.node = Node(create_broker(self.settings.engine.broker_url))
        self.router = APIRouter()
        self.router.add_api_route("/healthz", self._healthz, methods=["GET"], tags=["health"])
        self.router.add_api_route("/readyz", self._readyz, methods=["GET"], tags=["health"])
        self._ready = False

    async def start(self) -> None:
        """Connect the engines; the hub serves from now on."""
        await self.node.start()
        self._ready = True

    async def stop(self) -> None:
        """Disconnect the engines; safe to call after a failed start."""
        self._ready = False
        await self.node.stop()

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """A FastAPI lifespan that starts the hub before serving and stops it after."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def publish(self, channel: str, data: Any) -> None:
        """Publish ``data`` (anything msgspec encodes to JSON) to ``channel`` on every node.

        Raises:
            StateError: the hub is not started.
            EngineUnavailable: the broker cannot take the publication now.
        """
        await self.node.publish(channel, Publication(data=msgspec.json.encode(data)))

    async def _healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def _readyz(self) -> JSONResponse:
        if self._ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready"}, status_code=503)
