"""The HTTP server API against a real ``roomcast serve``, driven by the ``cent`` package.

Clients are raw protocol clients (``tests.api.ProtocolClient``), anonymous (user ""), so the
server runs with ``--insecure``; the API itself is guarded by the key ``k``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from cent import (
    AsyncClient,
    BatchRequest,
    BroadcastRequest,
    ChannelsRequest,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from cent.dto import Disconnect
from cent.exceptions import CentApiResponseError, CentTransportError, CentUnauthorizedError

from roomcast.api import schemas
from roomcast.api.auth import NO_KEY_CONFIGURED, WRONG_KEY, refusal
from roomcast.api.glob import compile_glob
from roomcast.api.methods import METHODS, ApiMethod, Outcome, call
from roomcast.api.schemas import ApiError, EmptyRequest
from roomcast.errors import EngineUnavailable
from roomcast.hub import Hub
from roomcast.settings import HttpApiSettings, Settings
from tests.api import ProtocolClient, protocol_client
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import TIMEOUT

KEY = "k"


@pytest.fixture(scope="module")
def api_server() -> Iterator[RunningServer]:
    server = start_server("--api-key", KEY, "--insecure", "--no-examples")
    yield server
    server.stop()


@pytest.fixture
def server(api_server: RunningServer) -> Iterator[RunningServer]:
    """The API server; the test fails if it logged a traceback meanwhile."""
    before = len(api_server.log)
    yield api_server
    written = api_server.log[before:]
    assert "Traceback" not in written, written


@pytest.fixture
async def cent(server: RunningServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"{server.http}/api", KEY, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
async def ws(server: RunningServer) -> AsyncIterator[ProtocolClient]:
    async with protocol_client(server.ws) as client:
        yield client


def post(server: RunningServer, method: str, body: Any, key: str = KEY) -> httpx.Response:
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(f"{server.http}/api/{method}", content=content, headers=headers, timeout=5)


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = TIMEOUT) -> None:
    """Wait until ``await condition()`` is true, failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


# --- publishing -------------------------------------------------------------------------------


async def test_publish_reaches_a_subscribed_client(cent: AsyncClient, ws: ProtocolClient) -> None:
    await ws.subscribe("news")
    result = await cent.publish(PublishRequest(channel="news", data={"text": "hello"}))
    assert (result.offset, result.epoch) == (0, "")
    pub = await ws.push("news", "pub")
    assert pub["data"] == {"text": "hello"}


async def test_publish_carries_tags_and_b64data(cent: AsyncClient, ws: ProtocolClient) -> None:
    await ws.subscribe("tagged")
    await cent.publish(PublishRequest(channel="tagged", data=1, tags={"kind": "note"}))
    assert await ws.push("tagged", "pub") == {"data": 1, "tags": {"kind": "note"}}
    b64 = base64.b64encode(b'{"from": "b64"}').decode()
    await cent.publish(PublishRequest(channel="tagged", data=None, b64data=b64))
    assert (await ws.push("tagged", "pub"))["data"] == {"from": "b64"}


async def test_broadcast_reaches_two_channels(server: RunningServer, cent: AsyncClient) -> None:
    async with protocol_client(server.ws) as one, protocol_client(server.ws) as two:
        await one.subscribe("sports")
        await two.subscribe("weather")
        result = await cent.broadcast(
            BroadcastRequest(channels=["sports", "weather"], data={"n": 7})
        )
        assert [r.error for r in result.responses] == [None, None]
        assert (await one.push("sports", "pub"))["data"] == {"n": 7}
        assert (await two.push("weather", "pub"))["data"] == {"n": 7}


def test_broadcast_reports_each_channels_error(server: RunningServer) -> None:
    reply = post(server, "broadcast", {"channels": ["fine", "", "nons:x"], "data": 1}).json()
    assert reply == {
        "result": {
            "responses": [
                {"result": {}},
                {"error": {"code": 107, "message": "bad request: channel required"}},
                {"error": {"code": 102, "message": "unknown channel: nons:x"}},
            ]
        }
    }


# --- observing --------------------------------------------------------------------------------


async def test_info_counts_connected_clients(server: RunningServer, cent: AsyncClient) -> None:
    async def no_clients() -> bool:  # connections of earlier tests close asynchronously
        [node] = (await cent.info(InfoRequest())).nodes
        return node.num_clients == 0

    await eventually(no_clients)
    async with protocol_client(server.ws), protocol_client(server.ws):
        [node] = (await cent.info(InfoRequest())).nodes
        assert node.num_clients == 2
        assert node.num_users == 1  # both anonymous
        assert node.num_subs == 0
        assert node.version
        assert node.uid
    await eventually(no_clients)


async def test_channels_lists_subscribed_channels(cent: AsyncClient, ws: ProtocolClient) -> None:
    await ws.subscribe("room-1")
    await ws.subscribe("lobby")
    channels = (await cent.channels(ChannelsRequest())).channels
    assert channels["room-1"].num_clients == 1
    assert channels["lobby"].num_clients == 1
    filtered = (await cent.channels(ChannelsRequest(pattern="room-*"))).channels
    assert set(filtered) == {"room-1"}


def test_channels_refuses_a_malformed_pattern(server: RunningServer) -> None:
    error = post(server, "channels", {"pattern": "{room"}).json()["error"]
    assert error["code"] == 107


async def test_presence_and_history_where_the_namespace_keeps_none(cent: AsyncClient) -> None:
    requests: list[Any] = [
        PresenceRequest(channel="news"),
        PresenceStatsRequest(channel="news"),
        HistoryRequest(channel="news", limit=10),
        HistoryRemoveRequest(channel="news"),
    ]
    for request in requests:
        with pytest.raises(CentApiResponseError) as caught:
            await cent._send(request)
        assert caught.value.code == 108, request


# --- acting on clients ------------------------------------------------------------------------


async def test_subscribe_then_unsubscribe_a_connected_client(
    cent: AsyncClient, ws: ProtocolClient
) -> None:
    await cent.subscribe(SubscribeRequest(user="", channel="alerts", client=ws.client))
    assert await ws.push("alerts", "subscribe") == {}
    await cent.publish(PublishRequest(channel="alerts", data="first"))
    assert (await ws.push("alerts", "pub"))["data"] == "first"

    await cent.unsubscribe(UnsubscribeRequest(user="", channel="alerts", client=ws.client))
    unsubscribe = await ws.push("alerts", "unsubscribe")
    assert 2000 <= unsubscribe["code"] < 2500  # a server unsubscribe: no resubscribing
    channels = (await cent.channels(ChannelsRequest(pattern="alerts"))).channels
    assert channels == {}


async def test_disconnect_closes_with_the_given_code(cent: AsyncClient, ws: ProtocolClient) -> None:
    request = DisconnectRequest(
        user="", client=ws.client, disconnect=Disconnect(code=4001, reason="bye")
    )
    await cent.disconnect(request)
    assert await ws.closed_with() == (4001, "bye")


async def test_disconnect_defaults_to_force_no_reconnect(
    cent: AsyncClient, ws: ProtocolClient
) -> None:
    await cent.disconnect(DisconnectRequest(user="", client=ws.client))
    assert await ws.closed_with() == (3503, "force disconnect")


async def test_disconnect_spares_the_whitelist(server: RunningServer, cent: AsyncClient) -> None:
    async with protocol_client(server.ws) as kept, protocol_client(server.ws) as gone:
        await cent.disconnect(DisconnectRequest(user="", whitelist=[kept.client]))
        assert (await gone.closed_with())[0] == 3503
        reply = await kept.command(rpc={"method": "nothing"})
        assert "id" in reply  # still connected: it answered


def test_disconnect_refuses_an_invalid_code(server: RunningServer) -> None:
    reply = post(server, "disconnect", {"user": "u", "disconnect": {"code": 1000, "reason": ""}})
    assert reply.json()["error"]["code"] == 107


def test_session_targeting_is_refused_rather_than_ignored(server: RunningServer) -> None:
    reply = post(server, "subscribe", {"user": "u", "channel": "c", "session": "s1"})
    assert reply.json()["error"]["code"] == 108


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


# --- refusals and bad requests ----------------------------------------------------------------


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


async def test_missing_channel_is_a_bad_request(cent: AsyncClient) -> None:
    with pytest.raises(CentApiResponseError) as caught:
        await cent.publish(PublishRequest(channel="", data=1))
    assert caught.value.code == 107


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"channel": 5, "data": 1}', b'{"channel": "c", "tags": [1]}'],
)
def test_undecodable_body_is_http_400_with_bad_request(server: RunningServer, body: bytes) -> None:
    response = post(server, "publish", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 107


def test_publish_without_data_is_a_bad_request(server: RunningServer) -> None:
    assert post(server, "publish", {"channel": "c"}).json()["error"]["code"] == 107


def test_invalid_b64data_is_a_bad_request(server: RunningServer) -> None:
    for b64data in ("%%%", base64.b64encode(b"\xff not json").decode()):
        reply = post(server, "publish", {"channel": "c", "b64data": b64data}).json()
        assert reply["error"]["code"] == 107


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


# --- units: the key check, patterns, engine failures -----------------------------------------


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"x-api-key": "s3cret"}, True),
        ({"authorization": "apikey s3cret"}, True),
        ({"authorization": "ApiKey s3cret"}, True),
        ({"authorization": "Bearer s3cret"}, False),
        ({"x-api-key": "wrong", "authorization": "apikey s3cret"}, False),
        ({"x-api-key": "s3cre"}, False),
        ({}, False),
    ],
)
def test_refusal(headers: dict[str, str], allowed: bool) -> None:
    settings = HttpApiSettings(key="s3cret")
    assert (refusal(headers, settings) is None) is allowed
    assert refusal(headers, HttpApiSettings(insecure=True)) is None
    assert refusal(headers, HttpApiSettings()) == NO_KEY_CONFIGURED


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("news*", "news:1", True),
        ("news*", "old-news", False),
        ("*", "", True),
        ("ch?", "ch1", True),
        ("ch?", "ch12", False),
        ("{chat,room}:*", "room:5", True),
        ("{chat,room}:*", "lobby:5", False),
        ("[a-c]x", "bx", True),
        ("[!a-c]x", "bx", False),
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
        ("a.b", "axb", False),
    ],
)
def test_glob(pattern: str, name: str, matches: bool) -> None:
    compiled = compile_glob(pattern)
    assert compiled is not None
    assert bool(compiled.fullmatch(name)) is matches


@pytest.mark.parametrize("pattern", ["{a", "a}", "[ab", "a\\", "[z-a]"])
def test_glob_refuses_malformed_patterns(pattern: str) -> None:
    assert compile_glob(pattern) is None


async def test_engine_unavailable_is_internal_error_100() -> None:
    async def failing(hub: Hub, request: EmptyRequest) -> Outcome:
        raise EngineUnavailable("redis at localhost:6379 refused the connection")

    outcome = await call(Hub(Settings()), ApiMethod(EmptyRequest, failing), EmptyRequest())
    assert isinstance(outcome, ApiError)
    assert outcome.code == 100
    assert "engine unavailable" in outcome.message
    assert "refused the connection" in outcome.message


async def test_publishing_on_a_stopped_hub_is_internal_error_100() -> None:
    request = schemas.PublishRequest(channel="c", data=msgspec.Raw(b"1"))
    outcome = await call(Hub(Settings()), METHODS["publish"], request)
    assert isinstance(outcome, ApiError)
    assert outcome.code == 100
