"""An app with endpoints of its own on ``roomcast.sockets``, for the tests of that API: run it
with ``uvicorn tests.support.rooms_api_app:app`` (the settings come from the environment).

- ``/rooms/{room}?user=U``: in ``room`` for the whole connection, with user ``U`` and info
  ``{"via": "plain"}``; a text ``json:VALUE`` is broadcast as JSON, ``bytes:TEXT`` as bytes,
  any other text as text, a binary frame as bytes;
- ``/dynamic``: in no room; ``join R``, ``leave R``, ``block R`` (in ``R`` until a ``end``),
  ``rooms`` (answers the rooms it is in, sorted, comma-separated);
- ``/crash``: raises in its block after the first message; then broadcasts ``after the
  crash`` to room ``crashes``;
- ``/bad-room``: asks for a room in a namespace nobody defined;
- ``GET /presence/{room}``: ``{client: [user, info]}`` on every node, or 400 with the error;
- ``POST /broadcast/{room}``: the body, as text, to the room (an ordinary endpoint
  publishing).
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse

from roomcast import ConfigurationError, ConnectionManager, Hub

__all__ = ["app", "hub", "manager"]

hub = Hub()
app = FastAPI(lifespan=hub.lifespan)
app.include_router(hub.router)
manager = ConnectionManager(hub)


@app.websocket("/rooms/{room}")
async def in_a_room(websocket: WebSocket, room: str, user: str = "") -> None:
    async with manager.connect(websocket, rooms=[room], user=user, info={"via": "plain"}) as s:
        async for message in s.messages():
            if isinstance(message, bytes):
                await manager.broadcast(room, message)
            elif message.startswith("json:"):
                await manager.broadcast_json(room, msgspec.json.decode(message[5:]))
            elif message.startswith("bytes:"):
                await manager.broadcast(room, message[6:].encode())
            else:
                await manager.broadcast(room, message)


@app.websocket("/dynamic")
async def dynamic(websocket: WebSocket) -> None:
    async with manager.connect(websocket) as socket:
        texts = socket.texts()
        async for command in texts:
            verb, _, room = command.partition(" ")
            if verb == "join":
                await socket.join(room)
            elif verb == "leave":
                await socket.leave(room)
            elif verb == "block":
                async with socket.room(room):
                    socket.send_text(f"in {room}")
                    async for inner in texts:
                        if inner == "end":
                            break
            socket.send_text(",".join(sorted(socket.rooms)))


@app.websocket("/crash")
async def crash(websocket: WebSocket) -> None:
    async with manager.connect(websocket) as socket:
        async for _ in socket.texts():
            raise RuntimeError("the endpoint's bug, on purpose")
    await manager.broadcast("crashes", "after the crash")


@app.websocket("/bad-room")
async def bad_room(websocket: WebSocket) -> None:
    async with manager.connect(websocket, rooms=["nowhere:room"]):
        pass


@app.get("/presence/{room}")
async def presence(room: str) -> Any:
    try:
        found = await manager.presence(room)
    except ConfigurationError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return {
        client: [info.user, msgspec.json.decode(info.conn_info) if info.conn_info else None]
        for client, info in found.items()
    }


@app.post("/broadcast/{room}")
async def broadcast(room: str, request: Request) -> dict[str, int]:
    publication = await manager.broadcast(room, (await request.body()).decode())
    return {"offset": publication.offset}
