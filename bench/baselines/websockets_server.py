"""Baseline 3: the ``websockets`` library's own asyncio server with ``broadcast()``.

``broadcast`` writes the frame synchronously into every open connection's buffer, with no
backpressure: a client that stops reading makes its buffer grow until the keepalive ping
times out (20 s + 20 s by default). Runs on uvloop when installed, as uvicorn does.

* ``/ws`` (any path but ``/pub``) - subscriber: joins the set; answers ``sub`` with ``ok``;
* ``/pub`` - publisher: each message received is broadcast, as a text frame, unchanged.

Run: ``python -m bench.baselines.websockets_server --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["handler", "main"]

SUBSCRIBERS: set[ServerConnection] = set()


async def handler(websocket: ServerConnection) -> None:
    if websocket.request is not None and websocket.request.path == "/pub":
        with contextlib.suppress(ConnectionClosed):
            while True:  # bytes in, text frame out: no decode / re-encode on the way
                broadcast(SUBSCRIBERS, await websocket.recv(decode=False), text=True)
        return
    SUBSCRIBERS.add(websocket)
    try:
        async for message in websocket:
            if message == "sub":
                await websocket.send("ok")
    except ConnectionClosed:  # clients that drop without a close frame are no error here
        pass
    finally:
        SUBSCRIBERS.discard(websocket)


async def _serve(port: int) -> None:
    async with serve(handler, "127.0.0.1", port) as server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    try:  # the same event loop uvicorn picks for the other baselines
        import uvloop
    except ImportError:
        asyncio.run(_serve(port))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(port))


if __name__ == "__main__":
    main()
