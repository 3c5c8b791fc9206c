"""Ctrl-C drains, as ``README.md`` says: the connected Centrifuge clients of
``/connection/websocket`` are closed with 3001 (shutdown), which the SDKs reconnect after,
then every other WebSocket (a connection that never sent connect, the seed endpoints, whose
own test is in ``tests/server/seeds``) with 1001 (going away). Every wait is bounded; the
drain's own suite is ``tests/e2e/test_drain.py``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.support.protocol_client import protocol_client
from tests.support.server import start_server
from tests.support.wsclient import TIMEOUT, closed_with, connect

GOING_AWAY = (1001, "server shutting down")
SHUTDOWN = (3001, "shutdown")


async def test_ctrl_c_closes_centrifuge_clients_with_shutdown_and_the_rest_with_going_away(
    tmp_path: Path,
) -> None:
    server = start_server("--insecure", cwd=tmp_path, env={"ROOMCAST_SHUTDOWN__TIMEOUT": "1"})
    try:
        async with (
            protocol_client(server.ws) as subscribed,
            protocol_client(server.ws) as connected,
            connect(f"{server.ws}/connection/websocket") as not_yet_connected,
            connect(f"{server.ws}/ws/echo") as seed,
        ):
            await subscribed.subscribe("news")
            server.process.send_signal(signal.SIGINT)
            assert await subscribed.closed_with() == SHUTDOWN
            assert await connected.closed_with() == SHUTDOWN
            assert await closed_with(not_yet_connected) == GOING_AWAY
            assert await closed_with(seed) == GOING_AWAY
        # uvicorn re-raises the SIGINT after its graceful shutdown: 128 + 2, as for any Ctrl-C.
        assert await asyncio.to_thread(server.process.wait, TIMEOUT) == 130
    finally:
        server.stop(signal.SIGKILL)
    assert "Traceback" not in server.log, server.log
