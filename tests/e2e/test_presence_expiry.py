"""Presence entries expire ``engine.presence_ttl`` after their last refresh, so the clients of
a crashed process disappear by themselves (``README.md``), while a live node's clients stay.

Two ``roomcast serve`` nodes on each of the machine's shared engines (``engine_url`` of
``tests/e2e/conftest.py``), with a 1 s TTL refreshed every 0.2 s; one client on each; node B
is killed with SIGKILL, so nothing removes its client's entry but the TTL. Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.server import start_server

TTL = 1.0
GONE_WITHIN = TTL + 4.0
"""The TTL, plus the engine's own expiry granularity and the polling."""
NAMESPACE = {"name": "room", "presence": True, "allow_subscribe_for_client": True}
ENV = {
    "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([NAMESPACE]),
    "ROOMCAST_ENGINE__PRESENCE_TTL": f"{TTL}s",
    "ROOMCAST_CLIENT__PRESENCE_UPDATE_INTERVAL": "200ms",
}


async def present(client: ProtocolClient, channel: str) -> set[str]:
    return set((await client.call("presence", channel=channel)).get("presence", {}))


async def until_present(
    client: ProtocolClient, channel: str, wanted: set[str], seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while (seen := await present(client, channel)) != wanted:
        assert time.monotonic() < deadline, f"presence is {seen}, not {wanted}, after {seconds} s"
        await asyncio.sleep(0.1)


async def test_the_clients_of_a_killed_node_leave_presence_by_themselves(
    engine_url: str, tmp_path: Path
) -> None:
    args = ("--no-examples", "--insecure", "--engine", engine_url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    node_a = await asyncio.to_thread(start_server, *args, env=ENV, cwd=tmp_path / "a")
    node_b = await asyncio.to_thread(start_server, *args, env=ENV, cwd=tmp_path / "b")
    channel = f"room:{uuid.uuid4().hex[:12]}"
    try:
        async with protocol_client(node_a.ws) as on_a, protocol_client(node_b.ws) as on_b:
            await on_a.subscribe(channel)
            await on_b.subscribe(channel)
            await until_present(on_a, channel, {on_a.client, on_b.client}, GONE_WITHIN)

            node_b.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(node_b.process.wait, 10)
            await until_present(on_a, channel, {on_a.client}, GONE_WITHIN)
            await asyncio.sleep(2 * TTL)  # the live node's client is refreshed, not expired
            assert await present(on_a, channel) == {on_a.client}
    finally:
        node_b.stop()
        node_a.stop()
    assert "Traceback" not in node_a.log, node_a.log
