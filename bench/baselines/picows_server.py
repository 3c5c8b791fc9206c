"""Baseline: a bare broadcast server on picows, the fastest WebSocket framing Python has.

picows parses and builds frames in Cython and calls back synchronously for each frame; there
is no ASGI, no task per connection and no queue of our own. A publication is written with one
``transport.send`` per subscriber, straight into each connection's asyncio transport buffer
(no backpressure: a client that stops reading makes its buffer grow), which is the floor for
what a Python server can do per delivery.

* ``/pub`` - publisher: each text frame received is sent, unchanged, to every subscriber;
* any other path - subscriber: answers ``sub`` with ``ok``.

Run: ``python -m bench.baselines.picows_server --port P``.
"""

from __future__ import annotations

import argparse
import asyncio

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server
from picows.common import WSUpgradeRequest

__all__ = ["Publisher", "Subscriber", "main"]

SUBSCRIBERS: set[WSTransport] = set()


class Subscriber(WSListener):
    """One subscriber connection: in the set from its ``sub`` until it leaves."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT and frame.get_payload_as_bytes() == b"sub":
            SUBSCRIBERS.add(transport)
            transport.send(WSMsgType.TEXT, b"ok")
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        SUBSCRIBERS.discard(transport)


class Publisher(WSListener):
    """The publisher connection: every text frame goes to every subscriber."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            for subscriber in SUBSCRIBERS:
                subscriber.send(WSMsgType.TEXT, payload)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


def _listener(request: WSUpgradeRequest) -> WSListener:
    return Publisher() if request.path == b"/pub" else Subscriber()


async def _serve(port: int) -> None:
    server = await ws_create_server(_listener, "127.0.0.1", port)
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
