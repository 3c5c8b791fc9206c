"""roomcast embedded in a FastAPI app, as an application runs it, for the ``embedded*`` and
``rooms*`` targets (:mod:`bench.embedded_target`).

One app serves both contracts of the load client:

* the Centrifuge protocol at ``/connection/websocket``, through the Hub's FastAPI route (where
  ``roomcast serve`` routes it past FastAPI) - the ``centrifuge`` dialect; the settings come
  from the environment (``ROOMCAST_CLIENT__INSECURE=true``: no token, anyone may subscribe and
  publish);
* plain WebSockets on ``roomcast.sockets`` - the ``plain`` dialect, the same contract as the
  FastAPI ``ConnectionManager`` baseline: ``/ws`` joins room ``bench`` and answers ``sub`` with
  ``ok``; ``/pub`` broadcasts each text it receives to the room.
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocket

from roomcast import ConnectionManager, Hub

__all__ = ["ROOM", "app", "hub", "manager"]

ROOM = "bench"

hub = Hub()
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)
manager = ConnectionManager(hub)


@app.websocket("/ws")
async def subscriber(websocket: WebSocket) -> None:
    async with manager.connect(websocket, rooms=[ROOM]) as socket:
        async for text in socket.texts():
            if text == "sub":
                socket.send_text("ok")


@app.websocket("/pub")
async def publisher(websocket: WebSocket) -> None:
    async with manager.connect(websocket) as socket:
        async for text in socket.texts():
            await manager.broadcast(ROOM, text)
