"""Baseline 1: the ``ConnectionManager`` from FastAPI's WebSockets tutorial, served by uvicorn.

The manager is the tutorial's shape, kept as is on purpose: a list of WebSockets, and a
``broadcast`` that awaits ``send_text`` on each connection in turn - so one slow client delays
every client after it, and a send that fails aborts the rest of that broadcast.

* ``/ws`` - subscriber: joins the list; answers ``sub`` with ``ok`` (the load client's
  "you are in the list" handshake);
* ``/pub`` - publisher WebSocket: each text received is broadcast;
* ``POST /publish`` - the same over HTTP (body = the text to broadcast).
"""

from __future__ import annotations

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect

__all__ = ["ConnectionManager", "app", "manager"]


class ConnectionManager:
    """The FastAPI tutorial's manager: a list of connections, sequential awaited sends."""

    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str) -> None:
        for connection in self.active_connections:
            await connection.send_text(message)


app = FastAPI()
manager = ConnectionManager()


@app.websocket("/ws")
async def subscriber(websocket: WebSocket) -> None:
    await manager.connect(websocket)
    try:
        while True:
            if await websocket.receive_text() == "sub":
                await websocket.send_text("ok")
    except WebSocketDisconnect:
        manager.disconnect(websocket)


@app.websocket("/pub")
async def publisher(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await manager.broadcast(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


@app.post("/publish")
async def publish(request: Request) -> dict[str, bool]:
    await manager.broadcast((await request.body()).decode())
    return {"ok": True}
