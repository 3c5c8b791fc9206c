"""The Protobuf codec, checked against an independent implementation of the same protocol:
the message classes centrifuge-python generated from ``client.proto``
(``centrifuge.protocol.client_pb2``). Commands it encodes are decoded here; replies and pushes
encoded here are decoded by it; and every message both schemas have agrees field by field.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from centrifuge.protocol import client_pb2 as sdk  # type: ignore[import-untyped]
from google.protobuf.json_format import MessageToDict

from roomcast import protocol
from roomcast.protocol import protobuf
from roomcast.protocol.protobuf_schema import SCHEMA, message_classes


def delimited(*messages: Any) -> bytes:
    return b"".join(protobuf.varint(m.ByteSize()) + m.SerializeToString() for m in messages)


def sdk_replies(frame: bytes) -> list[dict[str, Any]]:
    """``frame`` decoded by the SDK's classes, as the SDK hands replies to itself."""
    replies, pos = [], 0
    while pos < len(frame):
        size, shift = 0, 0
        while True:
            byte = frame[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        reply = sdk.Reply.FromString(frame[pos : pos + size])
        pos += size
        replies.append(MessageToDict(reply, preserving_proto_field_name=True))
    return replies


SHARED = sorted(name for name in SCHEMA if name in sdk.DESCRIPTOR.message_types_by_name)
"""The messages both schemas have (roomcast's also has some newer than the SDK's)."""


def test_most_messages_are_shared() -> None:
    assert len(SHARED) >= len(SCHEMA) - 3


@pytest.mark.parametrize("name", SHARED)
def test_every_message_agrees_with_the_sdks_schema(name: str) -> None:
    ours = message_classes()[name].DESCRIPTOR
    theirs = sdk.DESCRIPTOR.message_types_by_name[name]
    mine = {f.name: (f.number, f.type, f.is_repeated) for f in ours.fields}
    sdk_fields = {f.name: (f.number, f.type, f.is_repeated) for f in theirs.fields}
    shared = mine.keys() & sdk_fields.keys()
    assert {k: mine[k] for k in shared} == {k: sdk_fields[k] for k in shared}
    assert sdk_fields.keys() <= mine.keys(), "the SDK sends fields roomcast would not decode"


def test_a_frame_of_several_commands_decodes_in_order() -> None:
    connect = sdk.Command(id=1)
    connect.connect.token = "t"
    connect.connect.data = b'{"hello":1}'
    connect.connect.headers["X-App"] = "web"
    connect.connect.subs["news"].recover = True
    connect.connect.subs["news"].offset = 7
    connect.connect.subs["news"].epoch = "e"
    subscribe = sdk.Command(id=2)
    subscribe.subscribe.channel = "room"
    subscribe.subscribe.delta = "fossil"
    subscribe.subscribe.tf.op = "and"
    subscribe.subscribe.tf.nodes.add(key="k", cmp="eq", val="v")
    publish = sdk.Command(id=3)
    publish.publish.channel = "room"
    publish.publish.data = b"\x00\xff"
    pong = sdk.Command()
    decoded = protobuf.decode_frame(delimited(connect, subscribe, publish, pong))
    assert isinstance(decoded, list)
    first, second, third, fourth = decoded
    assert isinstance(first, protocol.Command)
    assert first.connect is not None
    assert (first.connect.token, bytes(first.connect.data)) == ("t", b'{"hello":1}')
    assert first.connect.headers == {"X-App": "web"}
    resumed = first.connect.subs["news"]
    assert (resumed.recover, resumed.offset, resumed.epoch) == (True, 7, "e")
    assert isinstance(second, protocol.Command)
    assert second.subscribe is not None
    assert second.subscribe.delta == "fossil"
    assert second.subscribe.tf == protocol.FilterNode(
        op="and", nodes=[protocol.FilterNode(key="k", cmp="eq", val="v")]
    )
    assert isinstance(third, protocol.Command)
    assert third.publish is not None
    assert bytes(third.publish.data) == b"\x00\xff"
    assert isinstance(fourth, protocol.Command)
    assert fourth.is_pong


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ("text", "binary frames"),
        (b"\x85", "truncated length prefix"),
        (b"\x05\x08\x01", "runs past the frame's end"),
        (b"\x02\xff\xff", "not a protobuf Command"),
        (
            delimited(
                sdk.Command(id=1, subscribe=sdk.SubscribeRequest(channel="c", offset=2**64 - 1))
            ),
            "9223372036854775807",
        ),
        (
            delimited(sdk.Command(id=1, subscribe=sdk.SubscribeRequest())),
            "subscribe without channel",
        ),
        (delimited(sdk.Command(connect=sdk.ConnectRequest())), "connect command without id"),
    ],
)
def test_a_bad_frame_ends_the_connection_with_bad_request(frame: bytes | str, problem: str) -> None:
    decoded = protobuf.decode_frame(frame)
    assert isinstance(decoded, protocol.Disconnect)
    assert decoded.code == protocol.DisconnectCode.BAD_REQUEST
    assert problem in decoded.reason


def test_unknown_fields_are_refused_by_name() -> None:
    command = sdk.Command(id=4, subscribe=sdk.SubscribeRequest(channel="c"))
    body = command.SerializeToString()
    # field 100 of the subscribe request (varint 5), appended inside its length-delimited body
    sub = sdk.SubscribeRequest(channel="c").SerializeToString() + b"\xa0\x06\x05"
    with_unknown = sdk.Command(id=4).SerializeToString() + b"\x2a" + bytes([len(sub)]) + sub
    assert body != with_unknown
    [refused] = protobuf.decode_frame(protobuf.varint(len(with_unknown)) + with_unknown)
    assert isinstance(refused, protocol.RefusedCommand)
    assert (refused.id, refused.error.code) == (4, 107)
    assert "subscribe#100" in refused.error.message
    without_id = b"\x08\x00" + b"\xa0\x06\x05"
    decoded = protobuf.decode_frame(protobuf.varint(len(without_id)) + without_id)
    assert isinstance(decoded, protocol.Disconnect)


def test_replies_decode_with_the_sdk() -> None:
    info = protocol.ClientInfo(user="u", client="c", conn_info=msgspec.Raw(b'{"a":1}'))
    subscribe = protocol.SubscribeResult(
        recoverable=True,
        positioned=True,
        epoch="e",
        offset=3,
        publications=[protocol.Publication(data=msgspec.Raw(b"\x01\x02"), offset=3, info=info)],
        delta=True,
    )
    frame = b"".join(
        [
            protobuf.encode_reply(protocol.Reply(id=1, subscribe=subscribe)),
            protobuf.encode_reply(protocol.Reply(id=2, unsubscribe=protocol.UnsubscribeResult())),
            protobuf.encode_error_reply(3, protocol.Error.of(protocol.ErrorCode.PERMISSION_DENIED)),
            protobuf.encode_publication_push("room", b"\xff", 9, info, {"k": "v"}, True),
            protobuf.PING,
        ]
    )
    first, second, third, fourth, ping = sdk_replies(frame)
    result = first["subscribe"]
    assert (result["recoverable"], result["offset"], result["delta"]) == (True, "3", True)
    [pub] = result["publications"]
    assert (pub["data"], pub["info"]["user"], pub["info"]["conn_info"]) == (
        "AQI=",
        "u",
        "eyJhIjoxfQ==",
    )
    assert second == {"id": 2, "unsubscribe": {}}  # an empty result is still there
    assert third == {"id": 3, "error": {"code": 103, "message": "permission denied"}}
    push = fourth["push"]
    assert push["channel"] == "room"
    assert push["pub"] == {
        "data": "/w==",
        "info": {"user": "u", "client": "c", "conn_info": "eyJhIjoxfQ=="},
        "offset": "9",
        "tags": {"k": "v"},
        "delta": True,
    }
    assert ping == {}


def test_pushes_decode_with_the_sdk() -> None:
    disconnect = protocol.Push(disconnect=protocol.Disconnect.of(protocol.DisconnectCode.SLOW))
    unsubscribe = protocol.Push(
        channel="c", unsubscribe=protocol.UnsubscribePush(code=2500, reason="insufficient state")
    )
    join = protocol.Push(channel="c", join=protocol.Join(info=protocol.ClientInfo("u", "c1")))
    frame = b"".join(protobuf.encode_push(push) for push in (disconnect, unsubscribe, join))
    assert [reply["push"] for reply in sdk_replies(frame)] == [
        {"disconnect": {"code": 3008, "reason": "slow"}},
        {"channel": "c", "unsubscribe": {"code": 2500, "reason": "insufficient state"}},
        {"channel": "c", "join": {"info": {"user": "u", "client": "c1"}}},
    ]
