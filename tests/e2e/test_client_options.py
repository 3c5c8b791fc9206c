"""A real ``roomcast serve`` answers the options of issue 10 that a raw protocol client sends:
``channel_regex`` refuses other names with 107 on every command that names a channel, the map
and shared-poll fields, fields ``client.proto`` does not have and the ``ping`` command are
refused by name, and none of it costs the connection or leaves a traceback in the log. Every
wait is bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.tokens import SECRET, connection_token

NAMESPACES = [
    {
        "name": "orders",
        "channel_regex": r"^[0-9]+$",
        "allow_subscribe_for_client": True,
        "allow_publish_for_subscriber": True,
        "presence": True,
        "allow_presence_for_subscriber": True,
        "history_size": 10,
        "history_ttl": "60s",
        "allow_history_for_subscriber": True,
    }
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        "--no-examples",
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
            "ROOMCAST_ENGINE__HISTORY": "memory://",
        },
        cwd=tmp_path_factory.mktemp("client-options"),
    )
    yield running
    running.stop()
    assert "Traceback" not in running.log, running.log


async def test_channel_regex_refuses_other_names_with_107(server: RunningServer) -> None:
    async with protocol_client(server.ws, token=connection_token("alice")) as client:
        for method, extra in [
            ("subscribe", {}),
            ("publish", {"data": {"v": 1}}),
            ("presence", {}),
            ("presence_stats", {}),
            ("history", {"limit": 1}),
        ]:
            reply = await client.command(**{method: {"channel": "orders:abc", **extra}})
            assert reply.get("error", {}).get("code") == 107, (method, reply)
            assert "channel_regex" in reply["error"]["message"], reply
        await client.subscribe("orders:42")
        await client.call("publish", channel="orders:42", data={"v": 2})
        pub = await client.push("orders:42", "pub")
        assert pub["data"] == {"v": 2}
        history = await client.call("history", channel="orders:42", limit=5)
        assert [p["data"] for p in history["publications"]] == [{"v": 2}]


async def test_unserved_fields_and_the_ping_command_are_refused_by_name(
    server: RunningServer,
) -> None:
    async with protocol_client(server.ws, token=connection_token("bob")) as client:
        reply = await client.command(subscribe={"channel": "orders:1", "type": 1, "cursor": "x"})
        assert reply["error"] == {
            "code": 107,
            "message": "subscribe: map and shared-poll subscriptions are not served: "
            "type, cursor not supported",
        }
        reply = await client.command(subscribe={"channel": "orders:1", "data": {"x": 1}})
        assert reply["error"]["code"] == 107
        assert "subscribe data is not supported" in reply["error"]["message"]
        reply = await client.command(ping={})
        assert reply["error"]["code"] == 108
        reply = await client.command(history={"channel": "orders:1", "limit": 1, "page": 2})
        assert reply["error"] == {
            "code": 107,
            "message": "history: unknown field history.page (not in client.proto)",
        }
        # The connection is still there and still serves.
        await client.subscribe("orders:1", delta="fossil")
        await client.call("publish", channel="orders:1", data={"whole": True})
        assert (await client.push("orders:1", "pub"))["data"] == {"whole": True}
