"""Encoders: the exact JSON a client receives, one line per reply or push."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast import protocol
from roomcast.protocol.codec import (
    PING,
    decode_frame,
    encode_error_reply,
    encode_publication_push,
    encode_push,
    encode_reply,
)
from roomcast.protocol.codes import Disconnect, DisconnectCode, Error, ErrorCode, UnsubscribeCode
from roomcast.protocol.messages import (
    ClientInfo,
    ConnectResult,
    HistoryResult,
    Join,
    Leave,
    Message,
    PresenceResult,
    PresenceStatsResult,
    Publication,
    PublishResult,
    Push,
    RefreshPush,
    RefreshResult,
    Reply,
    RPCResult,
    SubRefreshResult,
    SubscribePush,
    SubscribeResult,
    UnsubscribePush,
    UnsubscribeResult,
)
from tests.support.strategies import json_values

RAW = msgspec.Raw
ALICE = ClientInfo(user="alice", client="c1", conn_info=RAW(b'{"name":"Alice"}'))


def wire(encoded: bytes) -> Any:
    assert b"\n" not in encoded
    return json.loads(encoded)


def test_ping_is_an_empty_object_that_decodes_as_a_pong() -> None:
    assert PING == b"{}"
    result = decode_frame(PING)
    assert isinstance(result, list)
    assert result[0].is_pong


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply(
                id=1,
                connect=ConnectResult(
                    client="c1", version="0.1", ping=25, pong=True, session="s", node="n"
                ),
            ),
            {
                "id": 1,
                "connect": {
                    "client": "c1",
                    "version": "0.1",
                    "ping": 25,
                    "pong": True,
                    "session": "s",
                    "node": "n",
                },
            },
        ),
        (
            Reply(
                id=1,
                connect=ConnectResult(
                    client="c1",
                    expires=True,
                    ttl=60,
                    data=RAW(b'"hi"'),
                    subs={"news": SubscribeResult(recoverable=True)},
                ),
            ),
            {
                "id": 1,
                "connect": {
                    "client": "c1",
                    "expires": True,
                    "ttl": 60,
                    "data": "hi",
                    "subs": {"news": {"recoverable": True}},
                },
            },
        ),
        (Reply(id=2, subscribe=SubscribeResult()), {"id": 2, "subscribe": {}}),
        (
            Reply(
                id=2,
                subscribe=SubscribeResult(
                    recoverable=True,
                    positioned=True,
                    epoch="e",
                    offset=7,
                    recovered=True,
                    was_recovering=True,
                    publications=[Publication(data=RAW(b"{}"), offset=7)],
                ),
            ),
            {
                "id": 2,
                "subscribe": {
                    "recoverable": True,
                    "positioned": True,
                    "epoch": "e",
                    "offset": 7,
                    "recovered": True,
                    "was_recovering": True,
                    "publications": [{"data": {}, "offset": 7}],
                },
            },
        ),
        (Reply(id=3, unsubscribe=UnsubscribeResult()), {"id": 3, "unsubscribe": {}}),
        (Reply(id=4, publish=PublishResult()), {"id": 4, "publish": {}}),
        (Reply(id=5, presence=PresenceResult({})), {"id": 5, "presence": {"presence": {}}}),
        (
            Reply(id=5, presence=PresenceResult({"c1": ALICE})),
            {
                "id": 5,
                "presence": {
                    "presence": {
                        "c1": {"user": "alice", "client": "c1", "conn_info": {"name": "Alice"}}
                    }
                },
            },
        ),
        (
            Reply(id=6, presence_stats=PresenceStatsResult(num_clients=0, num_users=0)),
            {"id": 6, "presence_stats": {"num_clients": 0, "num_users": 0}},
        ),
        (
            Reply(id=7, history=HistoryResult(publications=[], epoch="", offset=0)),
            {"id": 7, "history": {"publications": [], "epoch": "", "offset": 0}},
        ),
        (Reply(id=8, rpc=RPCResult(data=RAW(b"[1,2]"))), {"id": 8, "rpc": {"data": [1, 2]}}),
        (Reply(id=8, rpc=RPCResult()), {"id": 8, "rpc": {}}),
        (
            Reply(id=9, refresh=RefreshResult(client="c1", expires=True, ttl=30)),
            {"id": 9, "refresh": {"client": "c1", "expires": True, "ttl": 30}},
        ),
        (
            Reply(id=10, sub_refresh=SubRefreshResult(expires=True, ttl=30)),
            {"id": 10, "sub_refresh": {"expires": True, "ttl": 30}},
        ),
    ],
)
def test_reply_shapes(reply: Reply, expected: Any) -> None:
    encoded = encode_reply(reply)
    assert wire(encoded) == expected
    assert msgspec.json.decode(encoded, type=Reply) == reply


def test_error_reply() -> None:
    assert encode_error_reply(3, Error.of(ErrorCode.PERMISSION_DENIED)) == (
        b'{"id":3,"error":{"code":103,"message":"permission denied"}}'
    )
    assert wire(encode_error_reply(4, Error.of(ErrorCode.TOO_MANY_REQUESTS))) == {
        "id": 4,
        "error": {"code": 111, "message": "too many requests", "temporary": True},
    }
    assert wire(encode_error_reply(5, Error(4001, "custom"))) == {
        "id": 5,
        "error": {"code": 4001, "message": "custom"},
    }
    assert encode_reply(Reply(id=3, error=Error.of(ErrorCode.METHOD_NOT_FOUND))) == (
        encode_error_reply(3, Error.of(ErrorCode.METHOD_NOT_FOUND))
    )


@pytest.mark.parametrize(
    ("push", "expected"),
    [
        (
            Push(channel="chat", join=Join(ALICE)),
            {
                "channel": "chat",
                "join": {"info": {"user": "alice", "client": "c1", "conn_info": {"name": "Alice"}}},
            },
        ),
        (
            Push(channel="chat", leave=Leave(ClientInfo("", "c2"))),
            {"channel": "chat", "leave": {"info": {"user": "", "client": "c2"}}},
        ),
        (
            Push(
                channel="chat",
                unsubscribe=UnsubscribePush(UnsubscribeCode.SERVER, "server unsubscribe"),
            ),
            {"channel": "chat", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}},
        ),
        (
            Push(channel="news", subscribe=SubscribePush(recoverable=True, epoch="e", offset=1)),
            {"channel": "news", "subscribe": {"recoverable": True, "epoch": "e", "offset": 1}},
        ),
        (Push(message=Message(data=RAW(b'{"hello":1}'))), {"message": {"data": {"hello": 1}}}),
        (
            Push(disconnect=Disconnect.of(DisconnectCode.SLOW)),
            {"disconnect": {"code": 3008, "reason": "slow"}},
        ),
        (
            Push(refresh=RefreshPush(expires=True, ttl=10)),
            {"refresh": {"expires": True, "ttl": 10}},
        ),
        (
            Push(connect=ConnectResult(client="c1", ping=25)),
            {"connect": {"client": "c1", "ping": 25}},
        ),
        (
            Push(
                channel="chat", pub=Publication(data=RAW(b"1"), tags={"k": "v"}, delta=True, time=5)
            ),
            {"channel": "chat", "pub": {"data": 1, "tags": {"k": "v"}, "delta": True, "time": 5}},
        ),
    ],
)
def test_push_shapes(push: Push, expected: Any) -> None:
    assert wire(encode_push(push)) == {"push": expected}


def test_publication_push() -> None:
    assert encode_publication_push("chat", b'{"text":"hi"}', offset=42) == (
        b'{"push":{"channel":"chat","pub":{"data":{"text":"hi"},"offset":42}}}'
    )


def test_publication_push_matches_the_general_encoder() -> None:
    data = b'{"a":[1,2,3]}'
    pub = Publication(data=RAW(data), info=ALICE, offset=9, tags={"t": "1"})
    assert encode_publication_push("c", data, 9, ALICE, {"t": "1"}) == encode_push(
        Push(channel="c", pub=pub)
    )


@pytest.mark.parametrize(
    "data",
    [
        b'{"z":1,"a":2}',
        b'{ "spaced" : [ 1 , 2 ] }',
        b'"\\u00e9\\n"',
        b"12345678901234567890123",
        b"1.0000000000000000001",
        b"1E400",
        '{"t":"héllo 👋"}'.encode(),
        b"null",
        b"[]",
    ],
)
def test_publication_data_is_copied_byte_for_byte(data: bytes) -> None:
    encoded = encode_publication_push("chat", data)
    assert encoded == b'{"push":{"channel":"chat","pub":{"data":' + data + b"}}}"


def test_raw_newlines_are_removed_and_escaped_ones_kept() -> None:
    data = b'{\n  "text": "line1\\nline2"\r\n}\n'
    encoded = encode_publication_push("chat", data)
    assert b"\n" not in encoded
    assert wire(encoded)["push"]["pub"]["data"] == {"text": "line1\nline2"}
    reply = encode_reply(Reply(id=1, rpc=RPCResult(data=RAW(b"[\n1,\n2\n]"))))
    assert wire(reply) == {"id": 1, "rpc": {"data": [1, 2]}}


def test_channel_names_are_escaped() -> None:
    encoded = encode_publication_push('we"ird\nchan', b"1")
    assert wire(encoded)["push"]["channel"] == 'we"ird\nchan'


def test_encoded_lines_join_into_one_frame_the_sdks_can_split() -> None:
    lines = [
        encode_reply(Reply(id=1, publish=PublishResult())),
        encode_publication_push("a", b'{\n"x": 1\n}'),
        PING,
        encode_push(Push(disconnect=Disconnect.of(DisconnectCode.SHUTDOWN))),
    ]
    frame = b"\n".join(lines)
    # The JS and Python SDKs decode a frame as: trim, split on "\n", JSON.parse each piece.
    assert [json.loads(piece) for piece in frame.strip().split(b"\n")] == [
        {"id": 1, "publish": {}},
        {"push": {"channel": "a", "pub": {"data": {"x": 1}}}},
        {},
        {"push": {"disconnect": {"code": 3001, "reason": "shutdown"}}},
    ]


@settings(max_examples=300)
@given(json_values, st.text(), st.integers(min_value=0, max_value=2**63 - 1))
def test_any_json_payload_survives_a_publication_push(
    value: Any, channel: str, offset: int
) -> None:
    data = json.dumps(value, indent=2, ensure_ascii=False).encode()
    encoded = encode_publication_push(channel, data, offset)
    assert b"\n" not in encoded
    push = json.loads(encoded)["push"]
    assert push["pub"]["data"] == value
    assert push["pub"].get("offset", 0) == offset


def test_fields_the_python_sdk_reads_unconditionally_are_always_written() -> None:
    assert wire(encode_error_reply(1, Error(4000, ""))) == {
        "id": 1,
        "error": {"code": 4000, "message": ""},
    }
    assert wire(encode_push(Push(disconnect=Disconnect(4000, "")))) == {
        "push": {"disconnect": {"code": 4000, "reason": ""}}
    }
    assert wire(encode_push(Push(channel="c", unsubscribe=UnsubscribePush(2000, "")))) == {
        "push": {"channel": "c", "unsubscribe": {"code": 2000, "reason": ""}}
    }


def test_empty_payloads_are_left_out_not_written_empty() -> None:
    info = protocol.ClientInfo(user="u", client="c", conn_info=protocol.raw(b""))
    push = protocol.encode_push(
        protocol.Push(channel="ch", pub=protocol.Publication(data=protocol.raw(b""), info=info))
    )
    assert msgspec.json.decode(push) == {
        "push": {"channel": "ch", "pub": {"info": {"user": "u", "client": "c"}}}
    }
    assert msgspec.json.decode(protocol.encode_publication_push("ch", b"")) == {
        "push": {"channel": "ch", "pub": {}}
    }
