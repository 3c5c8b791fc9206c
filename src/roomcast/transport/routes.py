"""The routes a Hub mounts in an app: liveness, readiness, and the Centrifuge client endpoint.

``/healthz`` says the process serves; ``/readyz`` says whether a load balancer should send it
new clients (the reason when not: not started, draining, the engine unreachable); the
WebSocket route at ``CLIENT_PATH`` runs the app's ``authenticate`` dependency for each
connection, then :func:`serve_client`, and refuses the handshake with HTTP 503 while the hub
does not accept new clients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, WebSocket
from fastapi.responses import JSONResponse

from roomcast.session import Credentials, SessionServices
from roomcast.session.drain import DRAINING
from roomcast.transport.asgi import refuse_handshake
from roomcast.transport.client_endpoint import CLIENT_PATH, serve_client

__all__ = ["hub_router"]


async def _no_app_credentials() -> Credentials | None:
    return None


def hub_router(
    services: SessionServices,
    *,
    authenticate: Callable[..., Any] | None,
    accepting: Callable[[], bool],
    not_ready: Callable[[], str | None],
) -> APIRouter:
    """The hub's routes.

    Args:
        services: what the hub shares with its sessions.
        authenticate: the app's FastAPI dependency returning ``Credentials`` (or None to fall
            back to connection tokens); None for tokens only.
        accepting: whether new client connections are let in now (False once a drain began).
        not_ready: why the hub should not get new clients now, or None when it should.
    """
    router = APIRouter()
    dependency = authenticate or _no_app_credentials

    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    async def readyz() -> JSONResponse:
        reason = not_ready()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    # A default rather than Annotated[...]: annotations are strings here, and FastAPI could
    # not resolve the local ``dependency`` inside one.
    async def client_connection(
        websocket: WebSocket,
        credentials: Credentials | None = Depends(dependency),  # noqa: B008
    ) -> None:
        if not accepting():
            await refuse_handshake(
                websocket.scope, websocket.receive, websocket.send, 503, DRAINING, retry_after=1
            )
            return
        await serve_client(
            websocket.scope, websocket.receive, websocket.send, services, credentials
        )

    router.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    router.add_api_route("/readyz", readyz, methods=["GET"], tags=["health"])
    router.add_api_websocket_route(CLIENT_PATH, client_connection)
    return router
