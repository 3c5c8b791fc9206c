"""The one adapter that turns writer frames into ASGI WebSocket send events, and the one way a
WebSocket handshake is refused with an HTTP status."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, cast

from roomcast.transport.close_codes import CloseCode
from roomcast.writer import Frame, SendFrame, WriteNow

__all__ = [
    "ASGIReceive",
    "ASGISend",
    "asgi_frame_sender",
    "close_reason",
    "over_limit",
    "refuse_handshake",
    "stop_server_pings",
    "unsent_of",
    "write_now_of",
]

logger = logging.getLogger("roomcast.transport")

WRITE_NOW_EXTENSION = "roomcast.write_now"
"""Offered by roomcast's uvicorn protocol (see ``transport.uvicorn_protocol``): ``roomcast
serve``, ``uvicorn --ws roomcast:RoomcastWebSocketProtocol`` and
``gunicorn -k roomcast.workers.UvicornWorker``. ``write`` is the synchronous write,
``stop_pings`` ends the server's WebSocket pings on the connection, ``unsent`` counts the
bytes written that the peer has not taken yet."""

DENIAL_RESPONSE_EXTENSION = "websocket.http.response"
"""The ASGI extension with which an app answers a WebSocket handshake with an HTTP response."""

_MAX_REASON_BYTES = 123  # RFC 6455: a close frame's payload is at most 125 bytes, 2 for the code

ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]


def asgi_frame_sender(send: ASGISend) -> SendFrame:
    """A ``SendFrame`` for a writer, over an ASGI ``send`` callable (raw, or Starlette's)."""

    async def send_frame(frame: Frame) -> None:
        if isinstance(frame, str):
            await send({"type": "websocket.send", "text": frame})
        elif isinstance(frame, bytes):
            await send({"type": "websocket.send", "bytes": frame})
        else:
            reason = close_reason(frame.reason)
            await send({"type": "websocket.close", "code": frame.code, "reason": reason})

    return send_frame


def close_reason(reason: str) -> str:
    """``reason`` cut to fit a close frame, never splitting a UTF-8 character."""
    encoded = reason.encode()
    if len(encoded) <= _MAX_REASON_BYTES:
        return reason
    return encoded[:_MAX_REASON_BYTES].decode(errors="ignore")


def stop_server_pings(scope: Mapping[str, Any]) -> None:
    """Stop the server's WebSocket pings on this connection, where roomcast's protocol runs
    it (the Centrifuge session pings its client itself); a no-op elsewhere."""
    extension = scope.get("extensions", {}).get(WRITE_NOW_EXTENSION)
    if extension is not None and "stop_pings" in extension:
        extension["stop_pings"]()


def unsent_of(scope: Mapping[str, Any]) -> Callable[[], int] | None:
    """The server's count of this connection's bytes the peer has not taken yet, if it
    offers one (roomcast's protocol does)."""
    extension = scope.get("extensions", {}).get(WRITE_NOW_EXTENSION)
    if extension is None or "unsent" not in extension:
        return None
    return cast(Callable[[], int], extension["unsent"])


def write_now_of(scope: Mapping[str, Any]) -> WriteNow | None:
    """The server's synchronous write for this connection, if it offers one; the first
    connection of a process without it logs a warning that says how to get it."""
    extension = scope.get("extensions", {}).get(WRITE_NOW_EXTENSION)
    if extension is None:
        _warn_without_write_now()
        return None
    return cast(WriteNow, extension["write"])


@functools.cache
def _warn_without_write_now() -> None:
    logger.warning(
        "this server does not run roomcast's WebSocket protocol: every send waits for the "
        "ASGI server, a client that stopped reading is not closed until it reads again, and "
        "shutdown closes with 1012. Run `uvicorn APP --ws roomcast:RoomcastWebSocketProtocol "
        "--ws-per-message-deflate false` or `gunicorn APP -k roomcast.workers.UvicornWorker`."
    )


def over_limit(message: str | bytes, limit: int) -> bool:
    """Whether ``message`` is larger than ``limit`` bytes on the wire (UTF-8 for text);
    encodes text only when its length alone cannot decide."""
    if isinstance(message, bytes):
        return len(message) > limit
    return len(message) * 4 > limit and len(message.encode()) > limit


async def refuse_handshake(
    scope: Mapping[str, Any],
    receive: ASGIReceive,
    send: ASGISend,
    status: int,
    reason: str,
    *,
    retry_after: int = 0,
) -> None:
    """Refuse a WebSocket handshake that has not been answered yet: with HTTP ``status`` and
    ``reason`` as its body where the server offers ASGI's denial response (uvicorn does),
    else with a close before accepting, which servers answer with HTTP 403. ``retry_after``
    (seconds) becomes a ``Retry-After`` header."""
    if (await receive())["type"] != "websocket.connect":
        return
    if DENIAL_RESPONSE_EXTENSION not in scope.get("extensions", {}):
        close = {"code": CloseCode.POLICY_VIOLATION, "reason": close_reason(reason)}
        await send({"type": "websocket.close", **close})
        return
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": reason.encode()})
