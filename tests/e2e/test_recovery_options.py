"""``allow_recovery`` without ``force_recovery``: a client that asks to recover (``recover``
with its last offset and epoch) gets every publication it missed, ``recovered: true``; a
client that does not ask gets none of them, and neither does one that asks in a namespace
that neither forces nor allows recovery.

Raw ``websockets`` clients speak the Centrifuge client protocol v2 (JSON) to a real
``roomcast serve``, connected with tokens (not ``--insecure``, which would allow everything).
Every wait is bounded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.tokens import SECRET, connection_token
from tests.support.wsclient import TIMEOUT

API_KEY = "k"
HISTORY = {"history_size": 100, "history_ttl": "300s", "allow_subscribe_for_client": True}
NAMESPACES = [
    {"name": "opt", "allow_recovery": True, **HISTORY},
    {"name": "kept", **HISTORY},
]
MISSED = [{"n": n} for n in range(3)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        "--no-examples",
        "--api-key",
        API_KEY,
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
        },
        cwd=tmp_path_factory.mktemp("roomcast-recovery-options"),
    )
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log


async def publish_missed(server: RunningServer, channel: str) -> None:
    async with httpx.AsyncClient(headers={"X-API-Key": API_KEY}, timeout=TIMEOUT) as http:
        for data in MISSED:
            reply = await http.post(
                f"{server.http}/api/publish", json={"channel": channel, "data": data}
            )
            assert "error" not in reply.json(), reply.text


async def subscribe_once(server: RunningServer, channel: str, **options: Any) -> dict[str, Any]:
    """One connection's subscribe result; the connection closes right after it."""
    async with protocol_client(server.ws, token=connection_token("ann")) as client:
        return await client.subscribe(channel, **options)


async def test_a_client_that_asks_recovers_what_it_missed(server: RunningServer) -> None:
    channel = f"opt:{uuid.uuid4().hex[:12]}"
    first = await subscribe_once(server, channel, recoverable=True)
    assert first["recoverable"] is True
    since = {"offset": first.get("offset", 0), "epoch": first["epoch"]}

    await publish_missed(server, channel)
    again = await subscribe_once(server, channel, recoverable=True, recover=True, **since)
    assert (again["was_recovering"], again["recovered"]) == (True, True)
    assert [p["data"] for p in again["publications"]] == MISSED
    offsets = [p["offset"] for p in again["publications"]]
    assert offsets == [since["offset"] + 1, since["offset"] + 2, since["offset"] + 3]


async def test_a_client_that_does_not_ask_gets_none_of_them(server: RunningServer) -> None:
    channel = f"opt:{uuid.uuid4().hex[:12]}"
    first = await subscribe_once(server, channel)
    assert "recoverable" not in first
    assert "epoch" not in first  # not positioned: nothing to recover from
    await publish_missed(server, channel)
    again = await subscribe_once(server, channel)
    assert "publications" not in again
    assert "recovered" not in again


async def test_asking_where_recovery_is_neither_forced_nor_allowed_gets_none(
    server: RunningServer,
) -> None:
    channel = f"kept:{uuid.uuid4().hex[:12]}"
    first = await subscribe_once(server, channel, recoverable=True)
    assert "recoverable" not in first
    await publish_missed(server, channel)
    again = await subscribe_once(
        server, channel, recoverable=True, recover=True, offset=0, epoch=""
    )
    assert "publications" not in again
    assert "recovered" not in again
