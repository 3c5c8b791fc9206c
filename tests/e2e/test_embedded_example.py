"""The embedded example app, run by uvicorn, driven by a raw protocol client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.server import RunningServer, start_app
from tests.support.wsclient import closed_with, connect, recv


@pytest.fixture(scope="module")
def embedded() -> Iterator[RunningServer]:
    server = start_app("examples.embedded_app:app")
    yield server
    server.stop()


class Client:
    """A raw protocol client: numbered commands, replies by id, pushes kept aside."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0
        self.pushes: list[dict[str, Any]] = []

    async def call(self, method: str, request: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, method: request}))
        while True:
            for line in str(await recv(self.ws)).split("\n"):
                message = json.loads(line)
                if message.get("id") == self.next_id:
                    return dict(message)
                if "push" in message:
                    self.pushes.append(message["push"])

    async def push(self) -> dict[str, Any]:
        while not self.pushes:
            for line in str(await recv(self.ws)).split("\n"):
                message = json.loads(line)
                if "push" in message:
                    self.pushes.append(message["push"])
        return self.pushes.pop(0)


def cookie(user: str) -> dict[str, str]:
    return {"Cookie": f"session={user}"}


async def test_connect_needs_the_apps_own_auth(embedded: RunningServer) -> None:
    async with connect(f"{embedded.ws}/connection/websocket") as ws:
        await ws.send('{"id":1,"connect":{}}')
        code, reason = await closed_with(ws)
    assert code == 3501
    assert "token" in reason


async def test_embedded_hooks_decide(embedded: RunningServer) -> None:
    url = f"{embedded.ws}/connection/websocket"
    async with connect(url, additional_headers=cookie("alice")) as a, connect(
        url, additional_headers=cookie("bob")
    ) as b:
        alice, bob = Client(a), Client(b)
        assert "connect" in await alice.call("connect", {})
        assert "connect" in await bob.call("connect", {})
        assert await alice.call("subscribe", {"channel": "lobby"}) == {"id": 2, "subscribe": {}}
        assert (await bob.call("subscribe", {"channel": "orders#alice"}))["error"]["code"] == 103
        assert "subscribe" in await bob.call("subscribe", {"channel": "lobby"})
        assert "subscribe" in await alice.call("subscribe", {"channel": "orders#alice"})

        # RPC answered by the app's function, with the user the cookie named.
        assert (await bob.call("rpc", {"method": "whoami", "data": {}}))["rpc"] == {
            "data": {"user": "bob"}
        }
        assert (await bob.call("rpc", {"method": "nope"}))["error"]["code"] == 104

        # Publications are validated by the app's pydantic model.
        bad = await bob.call("publish", {"channel": "lobby", "data": {"txt": "typo"}})
        assert bad["error"]["code"] == 107
        assert "text" in bad["error"]["message"]
        assert "publish" in await bob.call("publish", {"channel": "lobby", "data": {"text": "hi"}})
        pub = (await alice.push())["pub"]
        assert pub["data"] == {"text": "hi"}
        assert pub["info"]["user"] == "bob"
        assert pub["info"]["conn_info"] == {"name": "Bob"}

        # An ordinary endpoint of the app publishes with hub.publish().
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.post(f"{embedded.http}/users/alice/orders/7/paid")
        assert response.json() == {"published": True}
        push = await alice.push()
        assert push == {"channel": "orders#alice", "pub": {"data": {"order": 7, "status": "paid"}}}
    assert "Traceback" not in embedded.log
