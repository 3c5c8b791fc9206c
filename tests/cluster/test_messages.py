"""Control messages: every kind round-trips, and what another release writes is dropped or
read, never misread."""

from __future__ import annotations

import msgspec
import pytest

from roomcast.cluster.messages import (
    PROTOCOL_VERSION,
    Body,
    DisconnectCommand,
    Envelope,
    Leaving,
    NodeInfo,
    Position,
    RefreshCommand,
    SubscribeCommand,
    SubscribeOverride,
    SurveyReply,
    SurveyRequest,
    Target,
    UnsubscribeCommand,
    decode,
    encode,
)

BODIES: list[Body] = [
    NodeInfo("uid-1", "node a", "0.1.0", 12, 3, 2, 5, 4),
    Leaving(),
    DisconnectCommand(Target("alice"), 3503, "force disconnect", ["keep-me"]),
    SubscribeCommand(
        Target("", "client-1", all_users=True),
        "news",
        chan_info=b'{"role":"reader"}',
        data=b'{"welcome":true}',
        expire_at=1_900_000_000,
        recover_since=Position(7, "ep"),
        override=SubscribeOverride(presence=False, force_recovery=True),
    ),
    UnsubscribeCommand(Target("bob"), "news"),
    RefreshCommand(Target("bob"), expire_at=1_900_000_000, conn_info=b'{"v":2}'),
    SurveyRequest("s1", "channels"),
    SurveyReply("s1", "uid-2", b"\x80"),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_every_kind_round_trips(body: Body) -> None:
    assert decode(encode("origin-uid", body)) == ("origin-uid", body)


def test_another_protocol_version_is_dropped_unread() -> None:
    newer = msgspec.msgpack.encode(
        Envelope(PROTOCOL_VERSION + 1, "x", msgspec.Raw(msgspec.msgpack.encode(["a", "new", 1])))
    )
    assert decode(newer) is None


def test_an_unknown_kind_or_garbage_is_a_decode_error() -> None:
    unknown = msgspec.msgpack.encode(
        Envelope(PROTOCOL_VERSION, "x", msgspec.Raw(msgspec.msgpack.encode({"type": "warp"})))
    )
    for payload in (unknown, b"garbage", b""):
        with pytest.raises(msgspec.DecodeError):
            decode(payload)


def test_fields_a_newer_release_adds_are_ignored() -> None:
    body = {"type": "unsubscribe", "target": {"user": "u"}, "channel": "c", "reason": "new"}
    payload = msgspec.msgpack.encode(
        Envelope(PROTOCOL_VERSION, "x", msgspec.Raw(msgspec.msgpack.encode(body)))
    )
    assert decode(payload) == ("x", UnsubscribeCommand(Target("u"), "c"))
