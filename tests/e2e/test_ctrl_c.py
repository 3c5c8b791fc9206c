"""Ctrl-C closes every WebSocket with 1001 (going away), as ``README.md`` says: the Centrifuge
clients of ``/connection/websocket`` too, not only the seed endpoints (whose own test is in
``tests/server/seeds``), so SDKs reconnect to another node. Every wait is bounded."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.support.protocol_client import protocol_client
from tests.support.server import start_server
from tests.support.wsclient import TIMEOUT, closed_with, connect

GOING_AWAY = (1001, "server shutting down")


async def test_ctrl_c_closes_centrifuge_clients_with_going_away(tmp_path: Path) -> None:
    server = start_server("--insecure", cwd=tmp_path)
    try:
        async with (
            protocol_client(server.ws) as subscribed,
            protocol_client(server.ws) as connected,
            connect(f"{server.ws}/connection/websocket") as not_yet_connected,
            connect(f"{server.ws}/ws/echo") as seed,
        ):
            await subscribed.subscribe("news")
            server.process.send_signal(signal.SIGINT)
            assert await subscribed.closed_with() == GOING_AWAY
            assert await connected.closed_with() == GOING_AWAY
            assert await closed_with(not_yet_connected) == GOING_AWAY
            assert await closed_with(seed) == GOING_AWAY
        # uvicorn re-raises the SIGINT after its graceful shutdown: 128 + 2, as for any Ctrl-C.
        assert await asyncio.to_thread(server.process.wait, TIMEOUT) == 130
    finally:
        server.stop(signal.SIGKILL)
    assert "Traceback" not in server.log, server.log
