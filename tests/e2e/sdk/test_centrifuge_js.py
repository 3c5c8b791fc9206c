"""The npm ``centrifuge`` SDK under Node against a real ``roomcast serve``.

Each test runs ``tests/e2e/js/roundtrip.mjs`` (one scenario per run) and reads the JSON events it
prints, one per line, as they come. Tokens are minted here with PyJWT. The tests skip when
``node`` or ``tests/e2e/js/node_modules`` is missing (``make node-deps`` installs the latter),
except under ``CI=true``, where a missing prerequisite fails them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.support.node_script import NODE_DIR, NodeScript
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import connect, recv

SCRIPT = NODE_DIR / "roundtrip.mjs"
SECRET = "roomcast-js-sdk-test-secret-of-32+bytes"
NAMESPACES = [
    {"name": "chat", "allow_subscribe_for_client": True, "allow_publish_for_subscriber": True}
]
NODE_TIMEOUT_MS = 8000
"""The script's own overall timeout; it exits 2 when it fires."""
RUN_TIMEOUT = 15.0
"""Our bound on one node run, in seconds: the script's timeout plus Node's start-up."""


@pytest.fixture(scope="module")
def js_server(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server requiring HS256 connection tokens, with a ``chat`` namespace."""
    running = start_server(
        env={
            "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET,
            "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(NAMESPACES),
        },
        cwd=tmp_path_factory.mktemp("roomcast-js"),
    )
    yield running
    running.stop()


@pytest.fixture
def url(js_server: RunningServer) -> Iterator[str]:
    """The client endpoint; the test fails if the server logged a traceback meanwhile."""
    before = len(js_server.log)
    yield f"{js_server.ws}/connection/websocket"
    written = js_server.log[before:]
    assert "Traceback" not in written, written


def token(user: str, key: str = SECRET, **claims: Any) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 300, **claims}, key, "HS256")


class NodeRun(NodeScript):
    """One run of ``roundtrip.mjs`` with one scenario."""

    @classmethod
    async def start(cls, node: str, url: str, scenario: str, **args: Any) -> NodeRun:
        run: NodeRun = await cls.launch(
            node,
            SCRIPT,
            url,
            scenario,
            json.dumps({"timeout_ms": NODE_TIMEOUT_MS, **args}),
            label=scenario,
            seconds=RUN_TIMEOUT,
        )
        return run


async def run_to_end(node: str, url: str, scenario: str, **args: Any) -> NodeRun:
    run = await NodeRun.start(node, url, scenario, **args)
    code = await run.finish()
    assert code == 0, f"node {scenario} exited {code}; {run.describe()}"
    return run


async def raw_command(ws: Any, command_id: int, **command: Any) -> dict[str, Any]:
    """Send one protocol command from a raw ``websockets`` client and return its reply."""
    await ws.send(json.dumps({"id": command_id, **command}))

    async def reply() -> dict[str, Any]:
        while True:
            frame = await recv(ws)
            for line in str(frame).splitlines():
                message: dict[str, Any] = json.loads(line)
                if message.get("id") == command_id:
                    return message

    return await asyncio.wait_for(reply(), 5.0)


@pytest.mark.parametrize("build", ["json", "protobuf"])
async def test_publish_from_node_and_from_python_arrive_in_node(
    node: str, url: str, build: str
) -> None:
    """Node's SDK (its JSON build, or its protobuf build) and a raw JSON client share a
    channel: each one's publication reaches Node with the publisher's info."""
    channel = f"chat:js-roundtrip-{build}"
    own = {"text": "hello from node", "n": 1}
    external = {"text": "hello from python", "n": 2}
    run = await NodeRun.start(
        node,
        url,
        "pubsub",
        token=token("js-user"),
        channel=channel,
        data=own,
        external=external,
        protobuf=build == "protobuf",
    )
    try:
        await run.wait_for("ready")
        async with connect(url) as ws:
            connected = await raw_command(ws, 1, connect={"token": token("py-user")})
            assert "error" not in connected, connected
            subscribed = await raw_command(ws, 2, subscribe={"channel": channel})
            assert "error" not in subscribed, subscribed
            published = await raw_command(ws, 3, publish={"channel": channel, "data": external})
            assert "error" not in published, published
        code = await run.finish()
    finally:
        await run.kill()
    assert code == 0, f"node exited {code}; {run.describe()}"

    client_id = run.one("connected")["client"]
    assert run.one("subscribed")["channel"] == channel
    publications = {json.dumps(p["data"], sort_keys=True): p for p in run.named("publication")}
    mine = publications.get(json.dumps(own, sort_keys=True))
    assert mine is not None, f"own publication not received; {run.describe()}"
    assert mine["channel"] == channel
    assert mine["info"] == {"user": "js-user", "client": client_id}
    theirs = publications.get(json.dumps(external, sort_keys=True))
    assert theirs is not None, f"python's publication not received; {run.describe()}"
    assert theirs["info"]["user"] == "py-user"
    assert theirs["info"]["client"] != client_id
    assert run.one("unsubscribed") == {
        "event": "unsubscribed",
        "channel": channel,
        "code": 0,
        "reason": "unsubscribe called",
    }
    assert run.one("subscriptions")["channels"] == []
    assert run.one("disconnected")["code"] == 0
    [opened] = run.named("transport_open")
    assert opened["protocols"] == ("centrifuge-protobuf" if build == "protobuf" else None)
    assert not run.named("client_error"), run.describe()
    assert not run.named("subscription_error"), run.describe()


@pytest.mark.parametrize(
    ("connect_token", "code", "reason"),
    [
        pytest.param(None, 3501, "bad request", id="no-token-3501"),
        pytest.param(
            token("js-user", key="not-the-server-secret-32-bytes-long!"),
            3500,
            "invalid token",
            id="invalid-token-3500",
        ),
    ],
)
async def test_refused_connection_is_terminal(
    node: str, url: str, connect_token: str | None, code: int, reason: str
) -> None:
    args: dict[str, Any] = {"linger_ms": 800}
    if connect_token is not None:
        args["token"] = connect_token
    run = await run_to_end(node, url, "connect", **args)

    assert not run.named("connected"), run.describe()
    disconnected = run.one("disconnected")
    assert disconnected["code"] == code, run.describe()
    assert disconnected["reason"].startswith(reason), run.describe()
    # Terminal: one WebSocket only, and no "connecting" after the disconnect.
    assert len(run.named("transport_open")) == 1, run.describe()
    after = run.names()[run.names().index("disconnected") :]
    assert "connecting" not in after, run.describe()
    assert run.one("state")["state"] == "disconnected"


async def test_rpc_to_unregistered_method_surfaces_error_104(node: str, url: str) -> None:
    run = await run_to_end(node, url, "rpc", token=token("js-user"), method="no.such.method")

    assert not run.named("rpc_result"), run.describe()
    error = run.one("rpc_error")
    assert error["code"] == 104, run.describe()
    assert error["message"] == "method not found"
    assert error["temporary"] is False
    # An error reply leaves the connection open.
    assert run.one("state")["state"] == "connected"
    assert run.one("disconnected")["code"] == 0


async def test_private_channel_subscribes_with_get_token(node: str, url: str) -> None:
    channel = "$js-private"
    run = await run_to_end(
        node,
        url,
        "private",
        token=token("js-user"),
        channel=channel,
        sub_token=token("js-user", channel=channel),
    )

    assert run.one("get_token")["channel"] == channel
    assert run.one("outcome")["result"] == "subscribed", run.describe()
    assert run.one("subscribed")["channel"] == channel
    assert not run.named("subscription_error"), run.describe()
    assert run.one("disconnected")["code"] == 0
