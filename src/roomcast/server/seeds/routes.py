"""The seed endpoints, each answering exactly as the README's table describes.

They are written on the public plain-socket API (``roomcast.sockets``), as any app's own
endpoints would be: chat rooms are rooms of a ``ConnectionManager``, so a broadcast is one
publication fanned out without waiting for any client, and with a multi-process broker the
rooms span every worker. The rooms' names, the stream and clock timings and the ``/ws/secure``
token come from ``settings.examples``.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Cookie, Query, WebSocket
from fastapi.responses import HTMLResponse

from roomcast.server.seeds.pages import chat_page
from roomcast.settings import Settings
from roomcast.sockets import ConnectionManager
from roomcast.transport.close_codes import CloseCode

__all__ = ["seed_router"]


def seed_router(manager: ConnectionManager, settings: Settings) -> APIRouter:
    """All seed endpoints, on ``manager``'s rooms and configured by ``settings.examples``."""
    router = APIRouter()
    examples = settings.examples
    numbered_room = examples.chat_channel
    anonymous_room = examples.anonymous_chat_channel
    socket = manager.connect
    say = manager.broadcast

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page_view() -> str:
        return chat_page()

    @router.websocket("/ws/{client_id:int}")
    async def numbered_chat(websocket: WebSocket, client_id: int) -> None:
        async with socket(websocket, rooms=[numbered_room]) as ws:
            async for data in ws.texts():
                ws.send_text(f"You wrote: {data}")
                await say(numbered_room, f"Client #{client_id} says: {data}")
        await say(numbered_room, f"Client #{client_id} left the chat")

    @router.websocket("/ws/chat")
    async def anonymous_chat(websocket: WebSocket) -> None:
        async with socket(websocket, rooms=[anonymous_room]) as ws:
            async for data in ws.texts():
                await say(anonymous_room, f"Client says: {data}")
        await say(anonymous_room, "A client left the chat")

    @router.websocket("/ws")
    async def message_text(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:
            async for data in ws.texts():
                ws.send_text(f"Message text was: {data}")

    @router.websocket("/ws/echo")
    async def echo(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:
            async for data in ws.texts():
                ws.send_text(f"Echo: {data}")

    @router.websocket("/items/{item_id}/ws")
    async def item(
        websocket: WebSocket,
        item_id: str,
        session: Annotated[str | None, Cookie()] = None,
        token: Annotated[str | None, Query()] = None,
        q: int | None = None,
    ) -> None:
        async with socket(websocket) as ws:
            cookie_or_token = session or token
            if cookie_or_token is None:
                ws.close(
                    CloseCode.POLICY_VIOLATION,
                    "a 'session' cookie or a 'token' query parameter is required",
                )
                return
            async for data in ws.texts():
                ws.send_text(f"Session cookie or query token value is: {cookie_or_token}")
                if q is not None:
                    ws.send_text(f"Query parameter q is: {q}")
                ws.send_text(f"Message text was: {data}, for item ID: {item_id}")

    @router.websocket("/ws/secure")
    async def secure(websocket: WebSocket, token: str | None = None) -> None:
        async with socket(websocket) as ws:
            if token is None:
                ws.close(CloseCode.POLICY_VIOLATION, "the 'token' query parameter is required")
                return
            if not hmac.compare_digest(token.encode(), examples.secure_token.encode()):
                ws.close(CloseCode.POLICY_VIOLATION, "invalid token")
                return
            ws.send_text("Hello, authenticated_user! Welcome to the secure WebSocket.")
            async for data in ws.texts():
                ws.send_text(f"You said: {data}")

    @router.websocket("/ws/stream")
    async def stream(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:
            ws.ignore_incoming()
            for number in range(1, examples.stream_count + 1):
                if not ws.open:
                    return
                ws.send_text(f"Streaming message {number}")
                await asyncio.sleep(examples.stream_interval)
            ws.close(CloseCode.NORMAL_CLOSURE, "stream complete")

    @router.websocket("/ws/methods_text")
    async def methods_text(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:
            async for message in ws.texts():
                ws.send_text(f"Server received: {message}")

    @router.websocket("/ws/methods_bytes")
    async def methods_bytes(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:
            async for data in ws.binaries():
                ws.send_bytes(b"Server received: " + data)

    @router.websocket("/ws/methods_json")
    async def methods_json(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:
            async for data in ws.jsons():
                ws.send_json({"message": "Server received your JSON", "data": data})

    @router.websocket("/ws/methods_raw")
    async def methods_raw(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:
            async for message in ws.messages():
                if isinstance(message, str):
                    ws.send_text(f"Raw echo: {message}")
                else:
                    ws.send_bytes(b"Raw echo: " + message)

    @router.websocket("/ws/clock")
    async def clock(websocket: WebSocket) -> None:
        async with socket(websocket) as ws:

            async def tick() -> None:
                while ws.open:
                    await asyncio.sleep(examples.clock_interval)
                    ws.send_text(f"It is: {datetime.now(UTC).isoformat()}")

            ticker = asyncio.get_running_loop().create_task(tick())
            try:
                async for data in ws.texts():
                    ws.send_text(f"Message received: {data}")
            finally:
                ticker.cancel()

    return router
