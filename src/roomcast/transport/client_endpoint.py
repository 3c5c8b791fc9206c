"""The Centrifuge client WebSocket endpoint: frames in to a Session, frames out by its Writer.

It speaks raw ASGI, so ``roomcast serve`` routes ``/connection/websocket`` straight to it
(``DirectClientEndpoint``) and a connection carries no web-framework middleware for its
whole life; an embedding app reaches it through the Hub's FastAPI route instead, where the
app's own dependencies authenticate the client.

The handshake decides the encoding (:mod:`roomcast.transport.negotiation`): JSON in text
frames, or Protobuf in binary frames of length-delimited messages, which the writer joins into
one frame when several are queued.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from roomcast.metrics import CENTRIFUGE_TRANSPORT, CLIENT_DISCONNECTS, close_code_label
from roomcast.protocol import DisconnectCode
from roomcast.session.connection import Session, SessionServices
from roomcast.session.hooks import Credentials
from roomcast.transport.asgi import (
    asgi_frame_sender,
    over_limit,
    stop_server_pings,
    unsent_of,
    write_now_of,
)
from roomcast.transport.close_codes import CloseCode
from roomcast.transport.negotiation import PROTOBUF_SUBPROTOCOL, Negotiated, negotiate
from roomcast.transport.origins import origin_allowed
from roomcast.writer import Close, Writer, WriterState

__all__ = ["CLIENT_PATH", "PROTOBUF_SUBPROTOCOL", "DirectClientEndpoint", "serve_client"]

logger = logging.getLogger("roomcast.transport")

CLIENT_PATH = "/connection/websocket"
"""Where SDKs connect by default."""

_CRASHED = Close(CloseCode.INTERNAL_ERROR, "internal server error")
_NO_CLOSE = (CloseCode.ABNORMAL_CLOSURE, "")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def serve_client(
    scope: Scope,
    receive: Receive,
    send: Send,
    services: SessionServices,
    credentials: Credentials | None,
    *,
    release_headers: bool = False,
) -> None:
    """Run one client connection until it ends; never raises for anything the client does.

    However it ends (the client left, the server closed it, or this loop raised), the session
    is told once, with the close the server sent or else the client's, so the app's
    ``on_disconnect`` hears each connection end exactly once. With ``release_headers`` the
    scope's handshake headers are dropped once the handshake is answered (nothing after it
    reads them), rather than kept for the connection's lifetime."""
    settings = services.settings
    if (await receive())["type"] != "websocket.connect":
        return
    origin = _header(scope, b"origin")
    if not origin_allowed(origin, _header(scope, b"host"), settings.client.allowed_origins):
        logger.info("refused a connection from origin %r", origin)
        await send({"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION})
        return
    negotiated = negotiate(
        list(scope.get("subprotocols") or ()),
        scope.get("query_string") or b"",
        protobuf=settings.websocket.protobuf,
    )
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if negotiated.subprotocol is not None:
        accept["subprotocol"] = negotiated.subprotocol
    stop_server_pings(scope)  # the session pings its client itself; before the accept starts them
    await send(accept)
    if release_headers:
        scope["headers"] = []
    writer = Writer(
        asgi_frame_sender(send),
        max_queue_bytes=settings.client.queue_max_size,
        overflow=Close(DisconnectCode.SLOW, DisconnectCode.SLOW.reason),
        coalesce=True,
        join_binary=True,
        write_now=write_now_of(scope),
        unsent=unsent_of(scope),
    )
    writer.start()
    if isinstance(negotiated, Negotiated):
        session = Session(services, writer, credentials, negotiated.codec)
    else:
        logger.info("refused a connection: %s", negotiated.disconnect.reason)
        session = Session(services, writer, credentials)
        session.disconnect(negotiated.disconnect)
    limit = settings.websocket.message_size_limit
    gone: tuple[int, str] | None = None  # the client's close code and reason, once it left
    try:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                code = message.get("code", CloseCode.NO_STATUS_RECEIVED)
                gone = (int(code), str(message.get("reason") or ""))
                break
            frame: str | bytes | None = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if over_limit(frame, limit):
                logger.info("client %s sent a frame over %d bytes", session.client, limit)
                writer.close(Close(CloseCode.MESSAGE_TOO_BIG, f"frame over {limit} bytes"))
                continue
            await session.handle(frame)
    finally:
        if gone is None:
            # The loop ended by raising: an open writer closes with INTERNAL_ERROR, one closing
            # (a disconnect, a frame over the limit) sends the close it was given.
            writer.close(_CRASHED)
        # The app hears the close the server sent, if it sent one, else the client's.
        sent = writer.close_frame
        code, reason = (sent.code, sent.reason) if sent is not None else gone or _NO_CLOSE
        _count_disconnect(code)
        await session.closed(code, reason)
        if gone is not None or writer.state is WriterState.CLOSED:
            writer.discard()
        else:
            await writer.close_and_flush(_CRASHED)


def _count_disconnect(code: int) -> None:
    """Count a connection's end by its close code: the server's, else the client's."""
    CLIENT_DISCONNECTS.labels(CENTRIFUGE_TRANSPORT, close_code_label(code)).inc()


class DirectClientEndpoint:
    """ASGI app: client connections at ``CLIENT_PATH`` go straight to ``serve_client``; every
    other request (HTTP, lifespan, other WebSockets) to ``app``."""

    def __init__(self, app: ASGIApp, services: SessionServices) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == CLIENT_PATH:
            # This path bypasses the app, so no middleware of its own reads the scope later.
            await serve_client(scope, receive, send, self.services, None, release_headers=True)
        else:
            await self.app(scope, receive, send)
