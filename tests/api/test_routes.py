"""The server API's HTTP routes (``roomcast.api.routes``) against a real ``roomcast serve``: the
key check at the door, unknown methods (404), undecodable bodies (400), other HTTP methods
(405), and ``batch``.
"""

from __future__ import annotations

import httpx
import pytest
from cent import (
    AsyncClient,
    BatchRequest,
    InfoRequest,
    PublishRequest,
)
from cent.exceptions import CentTransportError, CentUnauthorizedError

from roomcast.api.auth import NO_KEY_CONFIGURED, WRONG_KEY
from tests.support.api_calls import KEY, post
from tests.support.protocol_client import ProtocolClient
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import TIMEOUT

# --- the key -----------------------------------------------------------------------------------


async def test_wrong_api_key_is_refused(server: RunningServer) -> None:
    async with AsyncClient(f"{server.http}/api", "wrong", timeout=TIMEOUT) as client:
        with pytest.raises(CentUnauthorizedError):
            await client.info(InfoRequest())
    response = post(server, "info", {}, key="")
    assert response.status_code == 401
    assert WRONG_KEY in response.json()["error"]["message"]


def test_authorization_apikey_header_is_accepted(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.http}/api/info", headers={"Authorization": f"apikey {KEY}"}, timeout=5
    )
    assert response.status_code == 200
    assert "nodes" in response.json()["result"]


def test_without_a_key_the_api_refuses_everything() -> None:
    server = start_server("--no-examples")
    try:
        response = post(server, "info", {}, key="anything")
        assert response.status_code == 401
        assert response.json()["error"]["message"].endswith(NO_KEY_CONFIGURED)
        assert "refuses every call" in server.log
    finally:
        server.stop()


def test_insecure_api_needs_no_key() -> None:
    server = start_server("--no-examples", env={"ROOMCAST_HTTP_API__INSECURE": "true"})
    try:
        response = post(server, "publish", {"channel": "c", "data": 1}, key="")
        assert response.json() == {"result": {}}
    finally:
        server.stop()


# --- unknown methods, undecodable bodies, other HTTP methods ----------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"channel": 5, "data": 1}', b'{"channel": "c", "tags": [1]}'],
)
def test_undecodable_body_is_http_400_with_bad_request(server: RunningServer, body: bytes) -> None:
    response = post(server, "publish", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 107


async def test_unknown_method_is_not_found(server: RunningServer) -> None:
    response = post(server, "frobnicate", {})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 104
    async with AsyncClient(f"{server.http}/nowhere", KEY, timeout=TIMEOUT) as client:
        with pytest.raises(CentTransportError) as caught:
            await client.info(InfoRequest())
    assert caught.value.status_code == 404


def test_only_post_is_allowed(server: RunningServer) -> None:
    response = httpx.get(f"{server.http}/api/info", headers={"X-API-Key": KEY}, timeout=5)
    assert response.status_code == 405


# --- batch ------------------------------------------------------------------------------------


@pytest.mark.parametrize("parallel", [False, True])
async def test_batch_runs_every_command(
    cent: AsyncClient, ws: ProtocolClient, parallel: bool
) -> None:
    await ws.subscribe("batch")
    result = await cent.batch(
        BatchRequest(
            requests=[
                PublishRequest(channel="batch", data=1),
                PublishRequest(channel="batch", data=2),
                InfoRequest(),
            ],
            parallel=parallel,
        )
    )
    assert len(result.replies) == 3
    received = [(await ws.push("batch", "pub"))["data"] for _ in range(2)]
    assert sorted(received) == [1, 2]


def test_batch_answers_bad_commands_one_by_one(server: RunningServer) -> None:
    commands = [
        {"publish": {"channel": "b", "data": 1}},
        {"frobnicate": {}},
        None,
        {"publish": {"channel": 5}},
        {"publish": {"data": 1}},
        {"batch": {"commands": []}},
    ]
    reply = post(server, "batch", {"commands": commands}).json()
    codes = [r.get("error", {}).get("code") for r in reply["replies"]]
    assert codes == [None, 104, 107, 107, 107, 104]
    assert reply["replies"][0] == {"publish": {}}
