"""encode_answer: each kind of result goes into its own field of the reply, an Error into its
``error``; every member of ``Result`` has a field."""

from __future__ import annotations

import json
import typing

import pytest

from roomcast import protocol
from roomcast.protocol import Error, ErrorCode
from roomcast.session.outcome import Result, encode_answer

RESULTS: list[tuple[Result, str]] = [
    (protocol.ConnectResult(client="c1"), "connect"),
    (protocol.RefreshResult(client="c1"), "refresh"),
    (protocol.SubscribeResult(), "subscribe"),
    (protocol.SubRefreshResult(), "sub_refresh"),
    (protocol.UnsubscribeResult(), "unsubscribe"),
    (protocol.PublishResult(), "publish"),
    (protocol.PresenceResult(presence={}), "presence"),
    (protocol.PresenceStatsResult(num_clients=1, num_users=1), "presence_stats"),
    (protocol.HistoryResult(publications=[], epoch="e", offset=3), "history"),
    (protocol.RPCResult(), "rpc"),
]


@pytest.mark.parametrize(("result", "field"), RESULTS, ids=[field for _, field in RESULTS])
def test_a_result_is_replied_in_its_field(result: Result, field: str) -> None:
    reply = json.loads(encode_answer(7, result))
    assert list(reply) == ["id", field]
    assert reply["id"] == 7


def test_every_result_kind_is_covered() -> None:
    assert {type(result) for result, _ in RESULTS} == set(typing.get_args(Result))


def test_an_error_is_replied_as_the_error() -> None:
    reply = json.loads(encode_answer(3, Error.of(ErrorCode.PERMISSION_DENIED)))
    assert reply == {"id": 3, "error": {"code": 103, "message": "permission denied"}}


def test_the_answer_is_one_line_of_text() -> None:
    answer = encode_answer(1, protocol.HistoryResult(publications=[], epoch="", offset=0))
    assert isinstance(answer, str)
    assert "\n" not in answer
