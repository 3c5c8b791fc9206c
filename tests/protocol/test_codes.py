"""Error, unsubscribe and disconnect codes: values, ranges and the standard texts."""

from __future__ import annotations

import pytest

from roomcast.protocol.codes import (
    MAX_REASON_BYTES,
    Disconnect,
    DisconnectCode,
    Error,
    ErrorCode,
    UnsubscribeCode,
    reconnects,
)


def test_error_codes_match_centrifuge() -> None:
    assert {code.name: int(code) for code in ErrorCode} == {
        "INTERNAL": 100,
        "UNAUTHORIZED": 101,
        "UNKNOWN_CHANNEL": 102,
        "PERMISSION_DENIED": 103,
        "METHOD_NOT_FOUND": 104,
        "ALREADY_SUBSCRIBED": 105,
        "LIMIT_EXCEEDED": 106,
        "BAD_REQUEST": 107,
        "NOT_AVAILABLE": 108,
        "TOKEN_EXPIRED": 109,
        "EXPIRED": 110,
        "TOO_MANY_REQUESTS": 111,
        "UNRECOVERABLE_POSITION": 112,
        "CONCURRENT_PAGINATION": 113,
    }


def test_disconnect_codes_match_centrifuge() -> None:
    assert {code.name: int(code) for code in DisconnectCode} == {
        "CONNECTION_CLOSED": 3000,
        "SHUTDOWN": 3001,
        "SERVER_ERROR": 3004,
        "EXPIRED": 3005,
        "SUB_EXPIRED": 3006,
        "SLOW": 3008,
        "WRITE_ERROR": 3009,
        "INSUFFICIENT_STATE": 3010,
        "FORCE_RECONNECT": 3011,
        "NO_PONG": 3012,
        "TOO_MANY_REQUESTS": 3013,
        "STATE_INVALIDATED": 3014,
        "INVALID_TOKEN": 3500,
        "BAD_REQUEST": 3501,
        "STALE": 3502,
        "FORCE_NO_RECONNECT": 3503,
        "CONNECTION_LIMIT": 3504,
        "CHANNEL_LIMIT": 3505,
        "INAPPROPRIATE_PROTOCOL": 3506,
        "PERMISSION_DENIED": 3507,
        "NOT_AVAILABLE": 3508,
        "TOO_MANY_ERRORS": 3509,
    }


@pytest.mark.parametrize("code", list(DisconnectCode))
def test_disconnect_code_reconnect_follows_its_range(code: DisconnectCode) -> None:
    assert code.reconnect is (3000 <= code < 3500)
    assert Disconnect.of(code).reconnect is code.reconnect


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (3000, True),
        (3499, True),
        (3500, False),
        (3999, False),
        (4000, True),
        (4499, True),
        (4500, False),
        (4999, False),
        (5000, True),
        (1006, True),
    ],
)
def test_reconnects_for_any_code(code: int, expected: bool) -> None:
    assert reconnects(code) is expected


@pytest.mark.parametrize("code", list(DisconnectCode))
def test_every_disconnect_code_has_a_short_reason(code: DisconnectCode) -> None:
    assert 0 < len(code.reason.encode()) <= MAX_REASON_BYTES
    assert Disconnect.of(code) == Disconnect(code, code.reason)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (DisconnectCode.SLOW, "slow"),
        (DisconnectCode.NO_PONG, "no pong"),
        (DisconnectCode.SHUTDOWN, "shutdown"),
        (DisconnectCode.BAD_REQUEST, "bad request"),
        (DisconnectCode.INVALID_TOKEN, "invalid token"),
        (DisconnectCode.EXPIRED, "connection expired"),
        (DisconnectCode.FORCE_NO_RECONNECT, "force disconnect"),
    ],
)
def test_standard_reasons(code: DisconnectCode, reason: str) -> None:
    assert Disconnect.of(code).reason == reason


@pytest.mark.parametrize(
    ("code", "message", "temporary"),
    [
        (ErrorCode.INTERNAL, "internal server error", True),
        (ErrorCode.PERMISSION_DENIED, "permission denied", False),
        (ErrorCode.METHOD_NOT_FOUND, "method not found", False),
        (ErrorCode.TOO_MANY_REQUESTS, "too many requests", True),
        (ErrorCode.UNRECOVERABLE_POSITION, "unrecoverable position", False),
    ],
)
def test_standard_errors(code: ErrorCode, message: str, temporary: bool) -> None:
    assert Error.of(code) == Error(code, message, temporary)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_has_a_message(code: ErrorCode) -> None:
    assert Error.of(code).message == code.message != ""


def test_error_of_with_custom_message_keeps_code_and_temporary() -> None:
    assert Error.of(ErrorCode.INTERNAL, "db down") == Error(100, "db down", temporary=True)


def test_disconnect_of_truncates_long_reason_at_a_character_boundary() -> None:
    disconnect = Disconnect.of(DisconnectCode.BAD_REQUEST, "é" * 100)
    assert disconnect.reason == "é" * (MAX_REASON_BYTES // 2)


def test_disconnect_accepts_application_codes() -> None:
    assert Disconnect(4000, "custom").reconnect is True
    assert Disconnect(4500, "custom terminal").reconnect is False


@pytest.mark.parametrize("code", [0, 1000, 2999, 5000])
def test_disconnect_rejects_codes_outside_close_range(code: int) -> None:
    with pytest.raises(ValueError, match="3000-4999"):
        Disconnect(code, "x")


def test_disconnect_rejects_reason_too_long_for_a_close_frame() -> None:
    with pytest.raises(ValueError, match="longer than"):
        Disconnect(4000, "x" * (MAX_REASON_BYTES + 1))


@pytest.mark.parametrize("code", list(UnsubscribeCode))
def test_unsubscribe_code_resubscribe_follows_its_range(code: UnsubscribeCode) -> None:
    assert 2000 <= code < 3000
    assert code.resubscribe is (code >= 2500)
    assert code.reason


def test_disconnect_of_never_raises_on_unencodable_reason() -> None:
    assert Disconnect.of(DisconnectCode.BAD_REQUEST, "x\ud800").reason == "x?"
