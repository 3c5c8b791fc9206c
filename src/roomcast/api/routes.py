"""``POST /api/<method>``: the HTTP transport of the server API, shaped like Centrifugo v5/v6's.

Per request, in order:

1. The API key (:func:`roomcast.api.auth.refusal`); refused: HTTP 401.
2. The method name; unknown: HTTP 404 with error 104 (Centrifugo answers 404 from its router).
3. The body, decoded (an empty body counts as ``{}``); not JSON or a wrong type: HTTP 400 with
   error 107 (Centrifugo answers 400 too).
4. The method: HTTP 200 with ``{"result": {...}}`` or ``{"error": {"code", "message"}}``.
   ``batch`` answers ``{"replies": [...]}``, each reply ``{"<method>": {...}}`` or
   ``{"error": {...}}``, the way ``cent`` reads them.

Other HTTP methods than POST get 405.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from fastapi import APIRouter, Request, Response

from roomcast.api.auth import refusal
from roomcast.api.methods import METHODS, Outcome, call, gather_bounded
from roomcast.api.schemas import ApiError, BatchRequest
from roomcast.hub import Hub
from roomcast.protocol import ErrorCode

__all__ = ["API_PREFIX", "answer_method", "server_api_router"]

logger = logging.getLogger("roomcast.api")

API_PREFIX = "/api"
"""Where the methods live: ``POST /api/publish``, ``POST /api/info``, ..."""

_encoder = msgspec.json.Encoder()


def server_api_router(hub: Hub) -> APIRouter:
    """The server API's routes, acting on ``hub``; include them in the app serving ``hub``.

    The key and the insecure flag are read from ``hub.settings.http_api`` once, here. With
    neither set, every call is refused with a message saying so, and a warning is logged.
    """
    settings = hub.settings.http_api
    if not settings.key and not settings.insecure:
        logger.warning(
            "server API at %s/* refuses every call: set http_api.key (--api-key)", API_PREFIX
        )
    router = APIRouter(prefix=API_PREFIX, tags=["server api"])

    async def serve_method(method: str, request: Request) -> Response:
        refused = refusal(request.headers, settings)
        if refused is not None:
            return _reply(401, {"error": ApiError.of(ErrorCode.UNAUTHORIZED, refused)})
        return await answer_method(hub, method, await request.body())

    router.add_api_route("/{method}", serve_method, methods=["POST"], include_in_schema=False)
    return router


async def answer_method(hub: Hub, method: str, body: bytes) -> Response:
    """The HTTP reply to an allowed call of ``method`` with ``body``: steps 2 to 4 of the
    module docstring. The admin UI's calls are answered here too."""
    body = body or b"{}"
    if method == "batch":
        return await _batch(hub, body)
    api_method = METHODS.get(method)
    if api_method is None:
        return _reply(404, {"error": ApiError.of(ErrorCode.METHOD_NOT_FOUND, method)})
    try:
        decoded = msgspec.json.decode(body, type=api_method.request)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        return _reply(400, {"error": ApiError.of(ErrorCode.BAD_REQUEST, str(exc))})
    outcome = await call(hub, api_method, decoded)
    return _reply(200, _envelope(outcome))


async def _batch(hub: Hub, body: bytes) -> Response:
    try:
        batch = msgspec.json.decode(body, type=BatchRequest)
    except msgspec.DecodeError as exc:
        return _reply(400, {"error": ApiError.of(ErrorCode.BAD_REQUEST, str(exc))})
    commands = [_run_command(hub, command) for command in batch.commands]
    if batch.parallel:
        replies = await gather_bounded(commands)
    else:
        replies = [await command for command in commands]
    return _reply(200, {"replies": replies})


async def _run_command(hub: Hub, command: dict[str, msgspec.Raw] | None) -> dict[str, Any]:
    """One batch command as ``{"<method>": result}`` or ``{"error": ...}``; never raises."""
    if command is None:
        return {"error": ApiError.of(ErrorCode.BAD_REQUEST, "null command")}
    name = next((key for key in command if key in METHODS), None)
    if name is None:
        unknown = ", ".join(command) or "empty command"
        return {"error": ApiError.of(ErrorCode.METHOD_NOT_FOUND, unknown)}
    api_method = METHODS[name]
    try:
        decoded = msgspec.json.decode(command[name], type=api_method.request)
    except msgspec.DecodeError as exc:
        return {"error": ApiError.of(ErrorCode.BAD_REQUEST, f"{name}: {exc}")}
    outcome = await call(hub, api_method, decoded)
    return {"error": outcome} if isinstance(outcome, ApiError) else {name: outcome}


def _envelope(outcome: Outcome) -> dict[str, Outcome]:
    return {"error": outcome} if isinstance(outcome, ApiError) else {"result": outcome}


def _reply(status: int, payload: dict[str, Any]) -> Response:
    return Response(_encoder.encode(payload), status, media_type="application/json")
