"""Baseline 2: python-socketio rooms, as an ASGI app under uvicorn.

Subscribers emit ``join`` (with an ack) and are put in the room with ``sio.enter_room``; a
publication is ``await sio.emit("msg", data, room=...)`` - python-socketio encodes the packet
once and queues it on every participant's Engine.IO socket (one task per recipient), and a
per-socket writer task drains that (unbounded) queue.

* Socket.IO event ``join`` (data: room name) - subscribe, acked with ``True``;
* Socket.IO event ``publish`` (data: the publication) - broadcast to room ``bench``;
* ``POST /publish`` - the same over HTTP (JSON body).
"""

from __future__ import annotations

import json
from typing import Any

import socketio  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

__all__ = ["ROOM", "app", "sio"]

ROOM = "bench"
sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[])


async def join(sid: str, room: str) -> bool:
    await sio.enter_room(sid, room)
    return True


async def publish(sid: str, data: Any) -> None:
    await sio.emit("msg", data, room=ROOM)


sio.on("join", join)
sio.on("publish", publish)


async def http_publish(request: Request) -> JSONResponse:
    await sio.emit("msg", json.loads(await request.body()), room=ROOM)
    return JSONResponse({"ok": True})


app = socketio.ASGIApp(
    sio, other_asgi_app=Starlette(routes=[Route("/publish", http_publish, methods=["POST"])])
)
