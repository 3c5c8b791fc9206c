"""The Centrifuge client WebSocket endpoint: frames in to a Session, frames out by its Writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket

from roomcast.context import Credentials
from roomcast.protocol import Disconnect, DisconnectCode
from roomcast.session import Session, SessionServices
from roomcast.transport.asgi import asgi_frame_sender
from roomcast.transport.close_codes import CloseCode
from roomcast.transport.origins import origin_allowed
from roomcast.writer import Close, Writer, WriterState

__all__ = ["PROTOBUF_SUBPROTOCOL", "serve_client"]

logger = logging.getLogger("roomcast.transport")

PROTOBUF_SUBPROTOCOL = "centrifuge-protobuf"
_CLOSE_FLUSH_TIMEOUT = 5.0


async def serve_client(
    websocket: WebSocket, services: SessionServices, credentials: Credentials | None
) -> None:
    """Run one client connection until it ends; never raises for anything the client does."""
    settings = services.settings
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, websocket.headers.get("host"), settings.client.allowed_origins):
        logger.info("refused a connection from origin %r", origin)
        await websocket.close(code=CloseCode.POLICY_VIOLATION, reason="origin not allowed")
        return
    await websocket.accept()
    writer = Writer(
        asgi_frame_sender(websocket.send),
        max_queue_bytes=settings.client.queue_max_size,
        overflow=Close(DisconnectCode.SLOW, DisconnectCode.SLOW.reason),
        coalesce=True,
    )
    writer.start()
    session = Session(services, writer, credentials)
    if PROTOBUF_SUBPROTOCOL in websocket.scope.get("subprotocols", []):
        session.disconnect(
            Disconnect.of(DisconnectCode.INAPPROPRIATE_PROTOCOL, "only the JSON protocol is served")
        )
    limit = settings.websocket.message_size_limit
    gone = False
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                gone = True
                break
            frame: str | bytes | None = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            if len(frame) > limit and _byte_size(frame) > limit:
                logger.info("client %s sent a frame over %d bytes", session.client, limit)
                writer.close(Close(CloseCode.MESSAGE_TOO_BIG, f"frame over {limit} bytes"))
                continue
            await session.handle(frame)
    finally:
        await session.closed()
        if gone or writer.state is WriterState.CLOSED:
            writer.discard()
        else:
            writer.close(Close(CloseCode.INTERNAL_ERROR, "internal server error"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_FLUSH_TIMEOUT)


def _byte_size(frame: str | bytes) -> int:
    return len(frame.encode()) if isinstance(frame, str) else len(frame)
