"""The embedded example app (``examples/embedded_app.py``), run by uvicorn, driven by raw
protocol clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_app
from tests.support.wsclient import closed_with, connect


@pytest.fixture(scope="module")
def embedded() -> Iterator[RunningServer]:
    server = start_app("examples.embedded_app:app")
    yield server
    server.stop()


def cookie(user: str) -> dict[str, str]:
    return {"Cookie": f"session={user}"}


async def test_connect_needs_the_apps_own_auth(embedded: RunningServer) -> None:
    async with connect(f"{embedded.ws}/connection/websocket") as ws:
        await ws.send('{"id":1,"connect":{}}')
        code, reason = await closed_with(ws)
    assert code == 3501
    assert "token" in reason


async def test_embedded_hooks_decide(embedded: RunningServer) -> None:
    async with (
        protocol_client(embedded.ws, **cookie("alice")) as alice,
        protocol_client(embedded.ws, **cookie("bob")) as bob,
    ):
        assert await alice.command(subscribe={"channel": "lobby"}) == {"id": 2, "subscribe": {}}
        assert (await bob.command(subscribe={"channel": "orders#alice"}))["error"]["code"] == 103
        assert "subscribe" in await bob.command(subscribe={"channel": "lobby"})
        assert "subscribe" in await alice.command(subscribe={"channel": "orders#alice"})

        # RPC answered by the app's function, with the user the cookie named.
        assert (await bob.command(rpc={"method": "whoami", "data": {}}))["rpc"] == {
            "data": {"user": "bob"}
        }
        assert (await bob.command(rpc={"method": "nope"}))["error"]["code"] == 104

        # Publications are validated by the app's pydantic model.
        bad = await bob.command(publish={"channel": "lobby", "data": {"txt": "typo"}})
        assert bad["error"]["code"] == 107
        assert "text" in bad["error"]["message"]
        assert "publish" in await bob.command(publish={"channel": "lobby", "data": {"text": "hi"}})
        pub = (await alice.next_push())["pub"]
        assert pub["data"] == {"text": "hi"}
        assert pub["info"]["user"] == "bob"
        assert pub["info"]["conn_info"] == {"name": "Bob"}

        # An ordinary endpoint of the app publishes with hub.publish().
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.post(f"{embedded.http}/users/alice/orders/7/paid")
        assert response.json() == {"published": True}
        push = await alice.next_push()
        assert push == {"channel": "orders#alice", "pub": {"data": {"order": 7, "status": "paid"}}}
    assert "Traceback" not in embedded.log


def test_the_readme_states_the_examples_length() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"`examples/embedded_app\.py` \((\d+) lines\)", readme)
    assert stated, "README.md no longer gives the example's length"
    lines = (root / "examples" / "embedded_app.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) == int(stated.group(1))
