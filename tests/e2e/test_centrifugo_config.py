"""The Centrifugo v6 config file of ``README.md`` works as it is: ``roomcast serve --config``
with that very JSON (read from the README) verifies connection tokens with its HMAC key,
admits the browser origin it lists and refuses others, applies its namespace's options, and
guards the server API with its key. Every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.protocol_client import protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.tokens import connection_token
from tests.support.wsclient import TIMEOUT, closed_with, connect

# The README's example key is short, as examples are; PyJWT warns about such keys.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

README = Path(__file__).resolve().parents[2] / "README.md"
_INTRO = "A Centrifugo v6 config file works as it is for these keys:"


def readme_config() -> dict[str, Any]:
    """The JSON block that follows the README's sentence about Centrifugo config files."""
    text = README.read_text(encoding="utf-8")
    assert _INTRO in text, "README.md no longer shows a Centrifugo config file"
    block = re.search(r"```json\n(.*?)```", text[text.index(_INTRO) :], re.DOTALL)
    assert block, "no ```json block after the Centrifugo config sentence"
    config: dict[str, Any] = json.loads(block.group(1))
    return config


CONFIG = readme_config()
SECRET: str = CONFIG["client"]["token"]["hmac_secret_key"]
ORIGIN: str = CONFIG["client"]["allowed_origins"][0]
API_KEY: str = CONFIG["http_api"]["key"]
NAMESPACE: str = CONFIG["channel"]["namespaces"][0]["name"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    cwd = tmp_path_factory.mktemp("roomcast-centrifugo-config")
    (cwd / "roomcast.json").write_text(json.dumps(CONFIG))
    server = start_server("--no-examples", "--config", "roomcast.json", cwd=cwd)
    yield server
    server.stop()
    assert "Traceback" not in server.log, server.log


def token(user: str) -> str:
    return connection_token(user, secret=SECRET)


async def test_tokens_origins_and_namespace_options_apply(server: RunningServer) -> None:
    channel = f"{NAMESPACE}:lobby"
    async with (
        protocol_client(server.ws, token=token("alice"), Origin=ORIGIN) as alice,
        protocol_client(server.ws, token=token("bob"), Origin=ORIGIN) as bob,
    ):
        # allow_publish_for_subscriber, not for_client: only a subscriber may publish.
        refused = await alice.command(publish={"channel": channel, "data": {"text": "early"}})
        assert refused.get("error", {}).get("code") == 103, refused
        await alice.subscribe(channel)  # allow_subscribe_for_client
        await bob.subscribe(channel)
        await alice.call("publish", channel=channel, data={"text": "hi"})
        pub = await bob.push(channel, "pub")
        assert (pub["data"], pub["info"]["user"]) == ({"text": "hi"}, "alice")


async def test_a_token_signed_with_another_key_is_disconnected(server: RunningServer) -> None:
    async with connect(f"{server.ws}/connection/websocket") as ws:
        forged = connection_token("mallory", secret="not-" + SECRET)
        await ws.send(json.dumps({"id": 1, "connect": {"token": forged}}))
        code, _ = await closed_with(ws)
    assert code == 3500


async def test_an_origin_the_file_does_not_list_is_refused(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await asyncio.wait_for(
            connect(
                f"{server.ws}/connection/websocket",
                additional_headers={"Origin": "http://evil.example"},
            ),
            TIMEOUT,
        )
    assert refused.value.response.status_code == 403


async def test_the_server_api_takes_the_files_key_only(server: RunningServer) -> None:
    body = {"channel": f"{NAMESPACE}:lobby", "data": {"text": "from the backend"}}
    async with httpx.AsyncClient(base_url=server.http, timeout=TIMEOUT) as http:
        accepted = await http.post("/api/publish", json=body, headers={"X-API-Key": API_KEY})
        wrong = await http.post("/api/publish", json=body, headers={"X-API-Key": "not-the-key"})
    assert accepted.status_code == 200
    assert "result" in accepted.json(), accepted.text
    assert wrong.status_code == 401, wrong.text
