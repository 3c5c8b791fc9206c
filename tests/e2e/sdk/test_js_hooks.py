"""The lifecycle hooks as the npm ``centrifuge`` SDK meets them under Node, against
``tests/support/hooks_app.py`` (uvicorn, roomcast's protocol): ``tests/e2e/js/hooks.mjs`` runs
one client command by command and prints what the SDK reports; the hooks' own log says what
they heard. Every wait is bounded; without ``node`` the tests skip (fail under ``CI=true``)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from roomcast import UnsubscribeCause
from roomcast.transport.close_codes import CloseCode
from tests.support.hook_log import HookLog, start_hooks_app
from tests.support.node_script import NODE_DIR, NodeScript
from tests.support.server import RunningServer

SCRIPT = NODE_DIR / "hooks.mjs"
RUN_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def hooks(
    node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, HookLog]]:
    server, log = start_hooks_app(tmp_path_factory.mktemp("js-hooks"))
    yield server, log
    server.stop()
    assert "Traceback" not in server.log, server.log


@asynccontextmanager
async def js_client(node: str, server: RunningServer, user: str) -> AsyncIterator[NodeScript]:
    """A connected SDK client as ``user``; killed after the block if it is still running."""
    url = f"{server.ws}/connection/websocket?user={user}"
    script: NodeScript = await NodeScript.launch(node, SCRIPT, url, label=user, seconds=RUN_TIMEOUT)
    try:
        await script.wait_for("connected")
        yield script
    finally:
        await script.kill()


async def run(script: NodeScript, command: str) -> dict[str, Any]:
    """Send ``command``; the events it printed, by name (the last of each)."""
    start = len(script.events)
    await script.send(command)
    await script.wait_for("done", command=command.split()[0])
    return {e["event"]: e for e in script.events[start:]}


async def test_connect_and_subscribe_answer_the_sdk_with_the_hooks_data(
    node: str, hooks: tuple[RunningServer, HookLog]
) -> None:
    server, log = hooks
    async with js_client(node, server, "ivy") as js:
        assert js.one("connected")["data"] == {"welcome": "ivy"}
        printed = await run(js, "subscribe room-js")
        assert printed["subscribed"]["data"] == {"hello": "room-js"}
        printed = await run(js, "presence room-js")
        assert printed["presence"]["clients"] == [{"user": "ivy", "connInfo": {"name": "Ivy"}}]
        printed = await run(js, "subscribe deny-js")
        assert printed["unsubscribed"]["code"] == 103
        await run(js, "unsubscribe room-js")
        await log.until(lambda: bool(log.events("unsubscribe", user="ivy")), "on_unsubscribe")
        (heard,) = log.events("unsubscribe", user="ivy")
        assert (heard["channel"], heard["code"]) == ("room-js", UnsubscribeCause.CLIENT)
        await run(js, "disconnect")
        await log.until(lambda: bool(log.events("disconnect", user="ivy")), "on_disconnect")
    (gone,) = log.events("disconnect", user="ivy")
    # The SDK closes its WebSocket with no status code.
    assert gone["code"] == CloseCode.NO_STATUS_RECEIVED
    assert gone["client"] == js.one("connected")["client"]


async def test_on_disconnect_fires_once_when_the_node_process_is_killed(
    node: str, hooks: tuple[RunningServer, HookLog]
) -> None:
    server, log = hooks
    async with js_client(node, server, "jay") as js:
        await run(js, "subscribe killed-js")
        js.process.send_signal(signal.SIGKILL)  # its TCP connection dies with it
        await js.process.wait()
        await log.until(lambda: bool(log.events("disconnect", user="jay")), "on_disconnect")
    await asyncio.sleep(0.5)  # a second call would come now, if there were one
    (gone,) = log.events("disconnect", user="jay")
    assert gone["code"] == CloseCode.ABNORMAL_CLOSURE
    (left,) = log.events("unsubscribe", user="jay")
    assert (left["channel"], left["code"]) == ("killed-js", UnsubscribeCause.DISCONNECT)


async def test_on_disconnect_fires_once_at_server_shutdown(node: str, tmp_path: Path) -> None:
    server, log = start_hooks_app(tmp_path)
    try:
        async with js_client(node, server, "kai") as js:
            server.process.send_signal(signal.SIGINT)
            # The SDK reports a WebSocket close below 3000 as "transport closed" (1) and
            # connects again; what the server sent is what on_disconnect heard.
            await js.wait_for("connecting", code=1)
            await asyncio.to_thread(server.process.wait, 10.0)
    finally:
        server.stop()
    (gone,) = log.events("disconnect", user="kai")
    assert (gone["code"], gone["reason"]) == (CloseCode.GOING_AWAY, "server shutting down")
    assert "Traceback" not in server.log, server.log
