"""The server API's methods (``roomcast.api.methods``): what each does and refuses, against a
real ``roomcast serve`` driven by the ``cent`` package, and ``call`` in-process.

Clients are raw protocol clients (``tests.support.protocol_client``), anonymous (user ""), so
the servers run with ``--insecure``; the API itself is guarded by the key ``k``. The history
server's tests (``history_cent``, ``history_ws``) use a namespace that keeps history and
presence.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from cent import (
    AsyncClient,
    BroadcastRequest,
    ChannelsRequest,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    StreamPosition,
    SubscribeRequest,
    UnsubscribeRequest,
)
from cent.dto import Disconnect
from cent.exceptions import CentApiResponseError

from roomcast.api import schemas
from roomcast.api.methods import METHODS, ApiMethod, Outcome, call
from roomcast.api.schemas import ApiError, EmptyRequest
from roomcast.errors import EngineUnavailable
from roomcast.hub import Hub
from roomcast.settings import Settings
from tests.support.api_calls import eventually, post
from tests.support.protocol_client import ProtocolClient, protocol_client
from tests.support.server import RunningServer
from tests.support.session_harness import Harness

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


# --- validation -------------------------------------------------------------------------------


async def test_missing_channel_is_a_bad_request(cent: AsyncClient) -> None:
    with pytest.raises(CentApiResponseError) as caught:
        await cent.publish(PublishRequest(channel="", data=1))
    assert caught.value.code == 107


def test_publish_without_data_is_a_bad_request(server: RunningServer) -> None:
    assert post(server, "publish", {"channel": "c"}).json()["error"]["code"] == 107


def test_b64data_that_is_not_base64_is_a_bad_request(server: RunningServer) -> None:
    reply = post(server, "publish", {"channel": "c", "b64data": "%%%"}).json()
    assert reply["error"] == {"code": 107, "message": "bad request: b64data must be base64"}


async def test_b64data_that_is_not_json_is_a_binary_publication(
    cent: AsyncClient, ws: ProtocolClient
) -> None:
    """JSON clients get bytes that are not JSON as their base64 string, tagged binary (the
    Protobuf clients' side is in tests/e2e/sdk/test_python_protobuf.py)."""
    await ws.subscribe("bytes")
    b64 = base64.b64encode(b"\xff not json").decode()
    await cent.publish(PublishRequest(channel="bytes", data=None, b64data=b64, tags={"k": "v"}))
    pub = await ws.push("bytes", "pub")
    assert (pub["data"], pub["tags"]) == (b64, {"k": "v", "roomcast.binary": "base64"})


# --- where history and presence are kept ------------------------------------------------------


async def test_publish_reports_offsets_and_history_pages(history_cent: AsyncClient) -> None:
    results = [
        await history_cent.publish(PublishRequest(channel="feed:a", data={"n": n}))
        for n in range(7)
    ]
    assert [r.offset for r in results] == [1, 2, 3, 4, 5, 6, 7]
    epoch = results[0].epoch
    assert epoch
    assert {r.epoch for r in results} == {epoch}

    kept = await history_cent.history(HistoryRequest(channel="feed:a", limit=-1))
    assert [p.offset for p in kept.publications] == [3, 4, 5, 6, 7]  # history_size 5
    assert (kept.offset, kept.epoch) == (7, epoch)
    assert kept.publications[0].data == {"n": 2}

    since = StreamPosition(offset=4, epoch=epoch)
    page = await history_cent.history(HistoryRequest(channel="feed:a", limit=2, since=since))
    assert [p.offset for p in page.publications] == [5, 6]
    newest = await history_cent.history(HistoryRequest(channel="feed:a", limit=2, reverse=True))
    assert [p.offset for p in newest.publications] == [7, 6]
    position = await history_cent.history(HistoryRequest(channel="feed:a"))
    assert (position.publications, position.offset) == ([], 7)

    too_old = StreamPosition(offset=1, epoch=epoch)
    with pytest.raises(CentApiResponseError) as caught:
        await history_cent.history(HistoryRequest(channel="feed:a", limit=10, since=too_old))
    assert caught.value.code == 112


async def test_history_remove_starts_a_new_epoch(history_cent: AsyncClient) -> None:
    first = await history_cent.publish(PublishRequest(channel="feed:b", data=1))
    await history_cent.history_remove(HistoryRemoveRequest(channel="feed:b"))
    emptied = await history_cent.history(HistoryRequest(channel="feed:b", limit=-1))
    assert emptied.publications == []
    again = await history_cent.publish(PublishRequest(channel="feed:b", data=2))
    assert again.offset == 1
    assert again.epoch != first.epoch
    stale = StreamPosition(offset=first.offset, epoch=first.epoch)
    with pytest.raises(CentApiResponseError) as caught:
        await history_cent.history(HistoryRequest(channel="feed:b", limit=10, since=stale))
    assert caught.value.code == 112


async def test_idempotent_publish_happens_once(
    history_cent: AsyncClient, history_ws: ProtocolClient
) -> None:
    await history_ws.subscribe("feed:c")
    request = PublishRequest(channel="feed:c", data={"order": 1}, idempotency_key="order-1")
    first = await history_cent.publish(request)
    second = await history_cent.publish(request)
    assert (second.offset, second.epoch) == (first.offset, first.epoch)
    other = await history_cent.publish(PublishRequest(channel="feed:c", data={"order": 2}))
    assert other.offset == first.offset + 1
    pubs = [(await history_ws.push("feed:c", "pub"))["data"] for _ in range(2)]
    assert pubs == [{"order": 1}, {"order": 2}]


async def test_presence_through_the_api(
    history_cent: AsyncClient, history_ws: ProtocolClient
) -> None:
    await history_ws.subscribe("feed:d")
    presence = await history_cent.presence(PresenceRequest(channel="feed:d"))
    assert list(presence.presence) == [history_ws.client]
    stats = await history_cent.presence_stats(PresenceStatsRequest(channel="feed:d"))
    assert (stats.num_clients, stats.num_users) == (1, 1)


# --- publish options: skip_history, version, delta ------------------------------------------


async def test_skip_history_delivers_without_keeping(
    history_server: RunningServer, history_ws: ProtocolClient
) -> None:
    await history_ws.subscribe("feed:skip")
    kept = post(history_server, "publish", {"channel": "feed:skip", "data": 1}).json()["result"]
    skipped = post(
        history_server, "publish", {"channel": "feed:skip", "data": 2, "skip_history": True}
    ).json()["result"]
    assert skipped == {}  # no offset: it is in no stream
    assert [(await history_ws.push("feed:skip", "pub"))["data"] for _ in range(2)] == [1, 2]
    page = post(history_server, "history", {"channel": "feed:skip", "limit": -1}).json()
    assert [p["data"] for p in page["result"]["publications"]] == [1]
    assert page["result"]["offset"] == kept["offset"]


async def test_a_stale_version_is_dropped_and_the_reply_says_so(
    history_server: RunningServer, history_ws: ProtocolClient
) -> None:
    await history_ws.subscribe("feed:v")

    def publish(data: int, version: int, epoch: str = "") -> dict[str, Any]:
        body = {"channel": "feed:v", "data": data, "version": version, "version_epoch": epoch}
        reply: dict[str, Any] = post(history_server, "publish", body).json()["result"]
        return reply

    first = publish(1, version=2)
    stale = publish(2, version=2)
    assert stale == {"offset": first["offset"], "epoch": first["epoch"], "suppressed": True,
                     "suppress_reason": "version"}  # fmt: skip
    newer = publish(3, version=3)
    assert newer["offset"] == first["offset"] + 1
    assert "suppressed" not in newer
    broadcast = post(
        history_server,
        "broadcast",
        {"channels": ["feed:v"], "data": 4, "version": 3},
    ).json()["result"]["responses"]
    assert broadcast[0]["result"]["suppress_reason"] == "version"  # broadcast too
    assert [(await history_ws.push("feed:v", "pub"))["data"] for _ in range(2)] == [1, 3]


def test_version_where_nothing_is_kept_is_refused_naming_it(
    server: RunningServer, history_server: RunningServer
) -> None:
    plain = post(server, "publish", {"channel": "news", "data": 1, "version": 1}).json()
    assert plain["error"]["code"] == 107
    assert "version needs history" in plain["error"]["message"]
    body = {"channel": "feed:x", "data": 1, "version": 1, "skip_history": True}
    skipped = post(history_server, "publish", body).json()
    assert "skip_history" in skipped["error"]["message"]


def test_delta_outside_a_delta_publish_namespace_is_refused_rather_than_ignored(
    server: RunningServer,
) -> None:
    publish = post(server, "publish", {"channel": "news", "data": 1, "delta": True}).json()
    assert publish["error"]["code"] == 108
    assert "delta_publish" in publish["error"]["message"]
    body = {"channels": ["news"], "data": 1, "delta": True}
    [response] = post(server, "broadcast", body).json()["result"]["responses"]
    assert response["error"]["code"] == 108


async def test_an_idempotent_repeat_says_it_was_suppressed(history_server: RunningServer) -> None:
    body = {"channel": "feed:once", "data": 1, "idempotency_key": "k"}
    first = post(history_server, "publish", body).json()["result"]
    again = post(history_server, "publish", body).json()["result"]
    assert again == {**first, "suppressed": True, "suppress_reason": "idempotency"}


# --- subscribe options and refresh through the API -------------------------------------------


async def test_subscribe_carries_data_and_info(
    history_server: RunningServer, history_ws: ProtocolClient
) -> None:
    body = {
        "user": "",
        "client": history_ws.client,
        "channel": "feed:s",
        "data": {"welcome": True},
        "b64info": base64.b64encode(b'{"seat":3}').decode(),
        "override": {"force_recovery": {"value": True}},
    }
    assert post(history_server, "subscribe", body).json() == {"result": {}}
    push = await history_ws.push("feed:s", "subscribe")
    assert push["data"] == {"welcome": True}
    assert push["recoverable"] is True
    presence = post(history_server, "presence", {"channel": "feed:s"}).json()["result"]
    assert presence["presence"][history_ws.client]["chan_info"] == {"seat": 3}


def test_subscribe_refuses_what_it_cannot_honour(server: RunningServer) -> None:
    unknown = post(
        server, "subscribe", {"user": "u", "channel": "c", "override": {"delta": {"value": True}}}
    )
    assert unknown.status_code == 400
    assert "delta" in unknown.json()["error"]["message"]
    past = post(server, "subscribe", {"user": "u", "channel": "c", "expire_at": 1000}).json()
    assert (past["error"]["code"], "expire_at" in past["error"]["message"]) == (107, True)
    bad_info = post(server, "subscribe", {"user": "u", "channel": "c", "b64info": "eyJ"}).json()
    assert "b64info" in bad_info["error"]["message"]


async def test_refresh_expired_closes_the_connection(cent: AsyncClient, ws: ProtocolClient) -> None:
    await cent.refresh(RefreshRequest(user="", client=ws.client, expired=True))
    assert (await ws.closed_with())[0] == 3005


def test_refresh_refuses_session_targeting(server: RunningServer) -> None:
    reply = post(server, "refresh", {"user": "u", "session": "s"}).json()
    assert reply["error"]["code"] == 108


# --- one reader for clients and the API --------------------------------------------------------

BOTH_PATHS: dict[str, Any] = {
    "without_namespace": {
        "allow_subscribe_for_client": True,
        "allow_history_for_client": True,
        "allow_presence_for_client": True,
    },
    "namespaces": [
        {
            "name": "feed",
            "history_size": 5,
            "history_ttl": "60s",
            "presence": True,
            "allow_subscribe_for_client": True,
            "allow_history_for_subscriber": True,
            "allow_presence_for_subscriber": True,
        }
    ],
}


@pytest.fixture
async def sessions() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.close()


def _as_json(outcome: Outcome) -> Any:
    return msgspec.json.decode(msgspec.json.encode(outcome))


async def test_history_and_presence_answer_alike_for_a_client_and_the_api(
    sessions: Harness,
) -> None:
    hub = await sessions.hub(channel=BOTH_PATHS)
    alice = await sessions.connected(hub, "alice", info={"name": "Alice"})
    await alice.subscribe("feed:a")
    for n in range(7):
        await hub.publish("feed:a", {"n": n})
    epoch = (await alice.call("history", {"channel": "feed:a"}))["history"]["epoch"]
    cases: list[tuple[str, dict[str, Any], msgspec.Struct]] = [
        ("history", {"channel": "feed:a", "limit": -1}, schemas.HistoryRequest("feed:a", -1)),
        (
            "history",
            {"channel": "feed:a", "limit": 2, "since": {"offset": 4, "epoch": epoch}},
            schemas.HistoryRequest("feed:a", 2, schemas.StreamPositionSchema(4, epoch)),
        ),
        ("history", {"channel": "feed:a"}, schemas.HistoryRequest("feed:a")),
        ("presence", {"channel": "feed:a"}, schemas.ChannelRequest("feed:a")),
        ("presence_stats", {"channel": "feed:a"}, schemas.ChannelRequest("feed:a")),
    ]
    answers = []
    for method, command, request in cases:
        reply = await alice.call(method, command)
        answer = await call(hub, METHODS[method], request)
        assert not isinstance(answer, ApiError), (method, answer)
        assert reply[method] == _as_json(answer), (method, command)
        answers.append(reply[method])
    kept, page, position, presence, stats = answers
    assert [p["data"] for p in kept["publications"]] == [{"n": n} for n in range(2, 7)]
    assert [p["offset"] for p in page["publications"]] == [5, 6]
    assert (position["publications"], position["offset"]) == ([], 7)
    assert presence["presence"][alice.session.client]["conn_info"] == {"name": "Alice"}
    assert stats == {"num_clients": 1, "num_users": 1}


async def test_history_and_presence_refuse_alike_for_a_client_and_the_api(
    sessions: Harness,
) -> None:
    hub = await sessions.hub(channel=BOTH_PATHS)
    alice = await sessions.connected(hub, "alice")
    await alice.subscribe("feed:a")
    await hub.publish("feed:a", 1)
    too_old = {"offset": 1, "epoch": "another epoch"}
    cases: list[tuple[str, dict[str, Any], msgspec.Struct, int]] = [
        (
            "history",
            {"channel": "feed:a", "limit": 10, "since": too_old},
            schemas.HistoryRequest("feed:a", 10, schemas.StreamPositionSchema(1, "another epoch")),
            112,
        ),
        ("history", {"channel": "news", "limit": 10}, schemas.HistoryRequest("news", 10), 108),
        ("presence", {"channel": "news"}, schemas.ChannelRequest("news"), 108),
        ("presence_stats", {"channel": "news"}, schemas.ChannelRequest("news"), 108),
    ]
    for method, command, request, code in cases:
        reply = await alice.call(method, command)
        answer = await call(hub, METHODS[method], request)
        assert isinstance(answer, ApiError), (method, answer)
        assert reply["error"]["code"] == answer.code == code, (method, command)


# --- call: engine failures --------------------------------------------------------------------


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
