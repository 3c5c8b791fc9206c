"""decode_frame: frames as the SDKs send them, and every way a frame can be wrong."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.protocol.codec import PING, RefusedCommand, decode_frame
from roomcast.protocol.codes import MAX_REASON_BYTES, Disconnect, DisconnectCode, Error
from roomcast.protocol.messages import (
    Command,
    ConnectRequest,
    FilterNode,
    HistoryRequest,
    Method,
    PingRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    RPCRequest,
    SendRequest,
    StreamPosition,
    SubRefreshRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from tests.support.strategies import json_values


def one(frame: bytes | str) -> Command:
    result = decode_frame(frame)
    assert isinstance(result, list), result
    assert len(result) == 1
    assert isinstance(result[0], Command), result
    return result[0]


def decoded(frame: bytes | str) -> list[Command | RefusedCommand]:
    result = decode_frame(frame)
    assert isinstance(result, list), result
    return result


def bad(frame: bytes | str) -> str:
    """Decode a frame that must be refused; return the disconnect reason."""
    result = decode_frame(frame)
    assert isinstance(result, Disconnect), result
    assert result.code == DisconnectCode.BAD_REQUEST
    assert result.reason.startswith("bad request")
    assert len(result.reason.encode()) <= MAX_REASON_BYTES
    return result.reason


# --- what the SDKs send ------------------------------------------------------------------------


def test_connect_as_centrifuge_js_sends_it() -> None:
    command = one(
        b'{"id":1,"connect":{"token":"jwt","data":{"app":"chat"},"name":"js","version":"5.0",'
        b'"headers":{"x-a":"1"},"subs":{"news":{"recover":true,"offset":4,"epoch":"e1"}}}}'
    )
    assert command.id == 1
    assert command.method is Method.CONNECT
    request = command.request
    assert isinstance(request, ConnectRequest)
    assert (request.token, request.name, request.version) == ("jwt", "js", "5.0")
    assert bytes(request.data) == b'{"app":"chat"}'
    assert request.headers == {"x-a": "1"}
    assert request.subs == {"news": SubscribeRequest(recover=True, offset=4, epoch="e1")}


def test_minimal_connect() -> None:
    assert one(b'{"id":1,"connect":{"name":"js"}}').connect == ConnectRequest(name="js")


def test_connect_as_centrifuge_python_sends_it() -> None:
    command = one('{"id": 1, "connect": {"token": "t", "name": "python"}}')
    assert command.connect == ConnectRequest(token="t", name="python")


def test_subscribe_with_recovery() -> None:
    command = one(
        b'{"id":2,"subscribe":{"channel":"chat","recover":true,"offset":3,"epoch":"abc"}}'
    )
    assert command.method is Method.SUBSCRIBE
    assert command.subscribe == SubscribeRequest(
        channel="chat", recover=True, offset=3, epoch="abc"
    )


def test_subscribe_with_every_option_the_js_sdk_sets() -> None:
    command = one(
        b'{"id":2,"subscribe":{"channel":"chat","token":"st","data":[1],"positioned":true,'
        b'"recoverable":true,"join_leave":true,"flag":1,"delta":"fossil",'
        b'"tf":{"op":"","key":"k","cmp":"eq","val":"v"}}}'
    )
    request = command.subscribe
    assert request is not None
    assert (request.positioned, request.recoverable, request.join_leave) == (True, True, True)
    assert (request.token, request.delta, request.flag) == ("st", "fossil", 1)
    assert bytes(request.data) == b"[1]"
    assert request.tf == FilterNode(key="k", cmp="eq", val="v")


def test_a_tags_filter_tree_decodes_whole() -> None:
    command = one(
        b'{"id":2,"subscribe":{"channel":"c","tf":{"op":"and","nodes":['
        b'{"key":"ticker","cmp":"in","vals":["BTC","ETH"]},'
        b'{"op":"not","nodes":[{"key":"price","cmp":"lt","val":"10"}]}]}}}'
    )
    assert command.subscribe is not None
    assert command.subscribe.tf == FilterNode(
        op="and",
        nodes=[
            FilterNode(key="ticker", cmp="in", vals=["BTC", "ETH"]),
            FilterNode(op="not", nodes=[FilterNode(key="price", cmp="lt", val="10")]),
        ],
    )


def test_connect_fields_of_the_latest_client_proto() -> None:
    command = one(b'{"id":1,"connect":{"flag":3,"profile":"feed","dict":"d1"}}')
    assert command.connect == ConnectRequest(flag=3, profile="feed", dictionary="d1")


def test_map_and_shared_poll_fields_decode_so_they_can_be_refused() -> None:
    subscribe = one(
        b'{"id":2,"subscribe":{"channel":"c","type":1,"phase":2,"cursor":"x","limit":5,"asc":true}}'
    ).subscribe
    assert subscribe == SubscribeRequest(
        channel="c", type=1, phase=2, cursor="x", limit=5, asc=True
    )
    publish = one(b'{"id":3,"publish":{"channel":"c","type":1,"key":"k","removed":true}}').publish
    assert publish == PublishRequest(channel="c", type=1, key="k", removed=True)
    sub_refresh = one(
        b'{"id":4,"sub_refresh":{"channel":"c","type":1,"track":[{"signature":"s"}],"untrack":["k"]}}'
    ).sub_refresh
    assert sub_refresh is not None
    assert (sub_refresh.type, sub_refresh.untrack) == (1, ["k"])
    assert [bytes(item) for item in sub_refresh.track] == [b'{"signature":"s"}']


@pytest.mark.parametrize(
    ("frame", "method", "expected"),
    [
        (
            b'{"id":3,"unsubscribe":{"channel":"chat"}}',
            Method.UNSUBSCRIBE,
            UnsubscribeRequest(channel="chat"),
        ),
        (
            b'{"id":5,"presence":{"channel":"chat"}}',
            Method.PRESENCE,
            PresenceRequest(channel="chat"),
        ),
        (
            b'{"id":6,"presence_stats":{"channel":"chat"}}',
            Method.PRESENCE_STATS,
            PresenceStatsRequest(channel="chat"),
        ),
        (
            b'{"id":7,"history":{"channel":"chat","since":{"offset":3,"epoch":"abc"},"limit":10,'
            b'"reverse":true}}',
            Method.HISTORY,
            HistoryRequest(channel="chat", since=StreamPosition(3, "abc"), limit=10, reverse=True),
        ),
        (
            b'{"id":7,"history":{"channel":"chat","limit":-1}}',
            Method.HISTORY,
            HistoryRequest(channel="chat", limit=-1),
        ),
        (b'{"id":10,"refresh":{"token":"t2"}}', Method.REFRESH, RefreshRequest(token="t2")),
        (
            b'{"id":11,"sub_refresh":{"channel":"chat","token":"t3"}}',
            Method.SUB_REFRESH,
            SubRefreshRequest(channel="chat", token="t3"),
        ),
    ],
)
def test_commands_without_payload(frame: bytes, method: Method, expected: object) -> None:
    command = one(frame)
    assert command.method is method
    assert command.request == expected
    assert not command.is_pong


def test_publish_keeps_data_as_raw_json() -> None:
    command = one(b'{"id":4,"publish":{"channel":"chat","data":{"text":"hi", "n": 1.50}}}')
    assert command.method is Method.PUBLISH
    assert isinstance(command.request, PublishRequest)
    assert bytes(command.request.data) == b'{"text":"hi", "n": 1.50}'


def test_rpc() -> None:
    command = one(b'{"id":9,"rpc":{"method":"sum","data":{"a":1,"b":2}}}')
    assert command.request == RPCRequest(method="sum", data=msgspec.Raw(b'{"a":1,"b":2}'))


def test_send_needs_no_id() -> None:
    command = one(b'{"send":{"data":{"x":1}}}')
    assert (command.id, command.method, command.is_pong) == (0, Method.SEND, False)
    assert command.request == SendRequest(data=msgspec.Raw(b'{"x":1}'))


def test_absent_data_is_empty_raw() -> None:
    request = one(b'{"id":4,"publish":{"channel":"c"}}').publish
    assert request is not None
    assert bytes(request.data) == b""


# --- pong, unknown methods, batches --------------------------------------------------------------


@pytest.mark.parametrize("frame", [b"{}", "{}", PING, b" { } "])
def test_empty_command_is_a_pong(frame: bytes | str) -> None:
    command = one(frame)
    assert command.is_pong
    assert command.method is None
    assert command.request is None


# --- fields client.proto does not have ----------------------------------------------------------


def test_a_command_with_fields_the_protocol_lacks_is_refused_naming_them() -> None:
    (refused,) = decoded(
        b'{"id":4,"subscribe":{"channel":"a","colour":"red","tf":{"key":"k","cmp":"ex",'
        b'"nodes":[{"weight":1}]}},"priority":9}'
    )
    assert isinstance(refused, RefusedCommand)
    assert (refused.id, refused.method) == (4, Method.SUBSCRIBE)
    assert refused.error == Error(
        107,
        "subscribe: unknown field subscribe.colour, subscribe.tf.nodes[0].weight, priority "
        "(not in client.proto)",
    )


def test_an_unknown_field_in_a_map_of_requests_is_named_with_its_key() -> None:
    (refused,) = decoded(b'{"id":1,"connect":{"subs":{"news":{"recover":true,"since":3}}}}')
    assert isinstance(refused, RefusedCommand)
    assert refused.error.message == (
        "connect: unknown field connect.subs['news'].since (not in client.proto)"
    )


@pytest.mark.parametrize(
    ("frame", "field"),
    [(b'{"unknown":1}', "unknown"), (b'{"send":{"data":1,"urgent":true}}', "send.urgent")],
)
def test_without_an_id_an_unknown_field_ends_the_connection(frame: bytes, field: str) -> None:
    assert bad(frame) == f"bad request: unknown field {field}"


def test_a_type_error_beside_an_unknown_field_is_still_a_bad_request() -> None:
    assert "$.subscribe.channel" in bad(b'{"id":1,"subscribe":{"colour":1,"channel":5}}')


def test_the_frame_around_a_refused_command_is_served() -> None:
    first, refused, last = decoded(
        b'{"id":1,"presence":{"channel":"a"}}\n'
        b'{"id":2,"history":{"channel":"a","mystery":1}}\n'
        b'{"id":3,"presence":{"channel":"b"}}'
    )
    assert isinstance(first, Command)
    assert isinstance(refused, RefusedCommand)
    assert isinstance(last, Command)
    assert refused.id == 2


def test_unknown_method_with_id_is_not_a_pong() -> None:
    command = one(b'{"id":5,"frobnicate":{}}')
    assert command.id == 5
    assert command.method is None
    assert not command.is_pong


def test_ping_command_of_client_proto_decodes_as_ping() -> None:
    command = one(b'{"id":5,"ping":{}}')
    assert command.method is Method.PING
    assert command.request == PingRequest()
    assert not command.is_pong


def test_first_request_in_method_order_wins() -> None:
    command = one(b'{"id":1,"publish":{"channel":"b"},"subscribe":{"channel":"a"}}')
    assert command.method is Method.SUBSCRIBE


def test_batched_frame_keeps_order() -> None:
    frame = b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"a"}}\n{}\n{"send":{"data":1}}'
    result = decode_frame(frame)
    assert isinstance(result, list)
    assert [(c.id, c.method) for c in result] == [
        (1, Method.CONNECT),
        (2, Method.SUBSCRIBE),
        (0, None),
        (0, Method.SEND),
    ]


def test_blank_lines_and_trailing_newline_are_ignored() -> None:
    result = decode_frame(b'\n{"id":1,"connect":{}}\r\n\n  \n{"id":2,"presence":{"channel":"a"}}\n')
    assert isinstance(result, list)
    assert [c.id for c in result] == [1, 2]


@pytest.mark.parametrize("frame", [b"", "", b"\n", b"  \n\n"])
def test_blank_frame_has_no_commands(frame: bytes | str) -> None:
    assert decode_frame(frame) == []


def test_str_frame_with_unicode() -> None:
    command = one('{"id":1,"publish":{"channel":"чат","data":{"t":"héllo 👋"}}}')
    assert command.publish is not None
    assert command.publish.channel == "чат"
    assert bytes(command.publish.data).decode() == '{"t":"héllo 👋"}'


# --- bad frames ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"{",
        b'{"id":1,}',
        b"{'id':1}",
        b'{"id":1} {"id":2}',
        b"nul",
        b'{"id":1,"send":{"data":}}',
        b'{"id":1,"publish":{"channel":"c","data":{"a":1}',
    ],
)
def test_malformed_json(frame: bytes) -> None:
    assert "malformed" in bad(frame) or "truncated" in bad(frame)


@pytest.mark.parametrize("frame", [b"[]", b'"connect"', b"1", b"null", b"true", b"[{}]"])
def test_non_object(frame: bytes) -> None:
    assert "Expected `object`" in bad(frame)


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        (b'{"id":"1"}', "$.id"),
        (b'{"id":1.5}', "$.id"),
        (b'{"id":true}', "$.id"),
        (b'{"id":1,"subscribe":{"channel":5}}', "$.subscribe.channel"),
        (b'{"id":1,"subscribe":"chat"}', "$.subscribe"),
        (b'{"id":1,"subscribe":{"channel":"c","recover":"yes"}}', "$.subscribe.recover"),
        (b'{"id":1,"history":{"channel":"c","limit":"10"}}', "$.history.limit"),
        (b'{"id":1,"history":{"channel":"c","since":[]}}', "$.history.since"),
        (b'{"id":1,"connect":{"headers":{"a":1}}}', "$.connect.headers"),
        (b'{"id":1,"connect":{"subs":{"a":{"offset":"x"}}}}', "$.connect.subs"),
        (b'{"id":1,"rpc":{"method":null}}', "$.rpc.method"),
        (b'{"id":1,"subscribe":{"channel":"c","tf":{"vals":"a"}}}', "$.subscribe.tf.vals"),
        (b'{"id":1,"subscribe":{"channel":"c","tf":{"nodes":[1]}}}', "$.subscribe.tf.nodes"),
    ],
)
def test_wrong_field_types(frame: bytes, where: str) -> None:
    assert where in bad(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":-1}',
        b'{"id":4294967296}',
        b'{"id":1e400}',
        b'{"id":100000000000000000000000000000}',
        b'{"id":1,"history":{"channel":"c","since":{"offset":9223372036854775808}}}',
        b'{"id":1,"subscribe":{"channel":"c","offset":-1}}',
        b'{"id":1,"history":{"channel":"c","limit":2147483648}}',
        b'{"id":1,"subscribe":{"channel":"c","offset":' + b"9" * 5000 + b"}}",
    ],
)
def test_numbers_out_of_range(frame: bytes) -> None:
    bad(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b'{"id":1,"unsubscribe":{}}',
        b'{"id":1,"publish":{"data":1}}',
        b'{"id":1,"presence":{"channel":""}}',
        b'{"id":1,"presence_stats":{}}',
        b'{"id":1,"history":{}}',
        b'{"id":1,"sub_refresh":{"token":"t"}}',
        b'{"id":1,"subscribe":{}}',
        b'{"id":1,"subscribe":{"channel":""}}',
    ],
)
def test_channel_is_required(frame: bytes) -> None:
    assert "channel" in bad(frame)


@pytest.mark.parametrize(
    "frame",
    [b'{"connect":{}}', b'{"id":0,"subscribe":{"channel":"a"}}', b'{"rpc":{"method":"m"}}'],
)
def test_commands_other_than_send_need_an_id(frame: bytes) -> None:
    assert "without id" in bad(frame)


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff",
        b'{"id":1,"publish":{"channel":"c","data":"\xff\xfe"}}',
        b'{"id":1,"publish":{"channel":"c","data":"\xc0\xaf"}}',
        b'{"id":1,"publish":{"channel":"\xed\xa0\x80"}}',
        '{"id":1,"publish":{"channel":"c","data":"\ud800"}}',
        "\udcff",
    ],
)
def test_invalid_utf8(frame: bytes | str) -> None:
    assert "UTF-8" in bad(frame)


def test_escaped_lone_surrogate_is_refused() -> None:
    bad(b'{"id":1,"publish":{"channel":"c","data":"\\ud800"}}')


def test_deeply_nested_json() -> None:
    depth = 100_000
    assert "nested" in bad(b'{"id":1,"send":{"data":' + b"[" * depth + b"]" * depth + b"}}")


def test_one_bad_line_refuses_the_whole_frame() -> None:
    bad(b'{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":1}}')


def test_reason_fits_a_close_frame_even_for_long_messages() -> None:
    bad(b'{"id":1,"connect":{"subs":{"' + b"a" * 500 + b'":{"offset":"x"}}}}')


# --- never raises ---------------------------------------------------------------------------


def _check(frame: bytes | str) -> None:
    result = decode_frame(frame)
    if isinstance(result, Disconnect):
        assert result.code == DisconnectCode.BAD_REQUEST
    else:
        assert all(isinstance(command, Command) for command in result)


@settings(max_examples=1000)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(frame: bytes) -> None:
    _check(frame)


@settings(max_examples=500)
@given(st.text(max_size=256))
def test_arbitrary_text_never_raises(frame: str) -> None:
    _check(frame)
    _check(frame.encode("utf-8", "surrogatepass"))


field_names = st.sampled_from(
    [
        "id",
        "channel",
        "data",
        "token",
        "offset",
        "epoch",
        "recover",
        "since",
        "limit",
        "subs",
        "method",
        "headers",
        "name",
        *[m.value for m in Method],
    ]
)
command_like = st.recursive(
    json_values, lambda inner: st.dictionaries(field_names, inner, max_size=5), max_leaves=16
)


@settings(max_examples=300)
@given(st.lists(command_like, min_size=1, max_size=3))
def test_command_shaped_json_never_raises(values: list[Any]) -> None:
    _check("\n".join(json.dumps(value) for value in values))


@settings(max_examples=300)
@given(json_values)
def test_payload_is_carried_byte_for_byte(value: Any) -> None:
    payload = json.dumps(value, ensure_ascii=False)
    command = one(f'{{"id":1,"publish":{{"channel":"c","data":{payload}}}}}'.encode())
    assert command.publish is not None
    assert bytes(command.publish.data) == payload.encode()
