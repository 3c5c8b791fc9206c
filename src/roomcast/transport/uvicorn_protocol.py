"""uvicorn's sans-I/O WebSocket protocol with two changes roomcast needs from its server.

1. A close sent while the peer has stopped reading is not queued behind the full write buffer
   (uvicorn waits for the buffer to drain before any send, so a slow consumer could never be
   closed): the close frame is appended to the transport's buffer at once and, if the peer
   does not finish the closing handshake within the close timeout, the connection is aborted.
2. Server shutdown closes connections with 1001 (going away) instead of 1012, so clients know
   to reconnect elsewhere rather than to the same address.

Only ``roomcast serve`` installs this class; an app embedding roomcast keeps its own server's
behaviour, where a slow consumer's writer still stops queueing but its socket waits for uvicorn.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from roomcast.transport.close_codes import CloseCode

__all__ = ["RoomcastWebSocketProtocol"]


class RoomcastWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, closing slow peers promptly and going away with 1001."""

    async def send(self, message: Any) -> None:
        if (
            message["type"] == "websocket.close"
            and self.handshake_complete
            and not self.close_sent
            and not self.disconnected
            and not self.writable.is_set()
        ):
            self._close_now(int(message.get("code", 1000)), message.get("reason") or "")
            return
        await super().send(message)

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent and not self.disconnected:
            self.stop_keepalive()
            self._close_now(CloseCode.GOING_AWAY, "server shutting down")
            return
        super().shutdown()

    def _close_now(self, code: int, reason: str) -> None:
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
