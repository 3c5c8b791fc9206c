"""The ASGI adapter: writer frames become ASGI WebSocket send events."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

from roomcast.protocol import DisconnectCode
from roomcast.transport.asgi import asgi_frame_sender, close_reason, over_limit, refuse_handshake
from roomcast.transport.close_codes import CloseCode
from roomcast.writer import Close, Frame


async def events_for(*frames: Frame) -> list[MutableMapping[str, Any]]:
    events: list[MutableMapping[str, Any]] = []

    async def send(event: MutableMapping[str, Any]) -> None:
        events.append(event)

    send_frame = asgi_frame_sender(send)
    for frame in frames:
        await send_frame(frame)
    return events


async def test_frames_become_asgi_events() -> None:
    events = await events_for("text", b"\x00bin", Close(CloseCode.NORMAL_CLOSURE, "bye"))
    assert events == [
        {"type": "websocket.send", "text": "text"},
        {"type": "websocket.send", "bytes": b"\x00bin"},
        {"type": "websocket.close", "code": 1000, "reason": "bye"},
    ]


async def test_close_event_carries_a_cut_reason() -> None:
    [event] = await events_for(Close(DisconnectCode.SLOW, "x" * 500))
    assert event == {"type": "websocket.close", "code": 3008, "reason": "x" * 123}


def test_short_reason_is_unchanged() -> None:
    assert close_reason("going away") == "going away"
    assert close_reason("é" * 61) == "é" * 61  # 122 bytes


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("a" * 200, "a" * 123),
        ("é" * 100, "é" * 61),  # 2-byte characters: 122 bytes, not half of the 62nd
        ("a" + "€" * 60, "a" + "€" * 40),  # 3-byte characters: 121 bytes
        ("🙂" * 40, "🙂" * 30),  # 4-byte characters: 120 bytes
    ],
)
def test_long_reason_is_cut_to_123_bytes_on_a_character_boundary(
    reason: str, expected: str
) -> None:
    cut = close_reason(reason)
    assert cut == expected
    assert len(cut.encode()) <= 123


def test_over_limit_counts_utf8_bytes_of_text() -> None:
    assert not over_limit("é" * 5, 10)
    assert over_limit("é" * 6, 10)  # 6 characters, 12 bytes
    assert over_limit(b"x" * 11, 10)
    assert not over_limit(b"x" * 10, 10)


async def refusal_events(extensions: dict[str, Any]) -> list[MutableMapping[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(event: MutableMapping[str, Any]) -> None:
        sent.append(event)

    scope = {"type": "websocket", "extensions": extensions}
    await refuse_handshake(scope, receive, send, 503, "draining", retry_after=1)
    return sent


async def test_a_handshake_is_refused_with_an_http_status_where_the_server_offers_it() -> None:
    start, body = await refusal_events({"websocket.http.response": {}})
    assert start == {
        "type": "websocket.http.response.start",
        "status": 503,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"retry-after", b"1")],
    }
    assert body == {"type": "websocket.http.response.body", "body": b"draining"}


async def test_without_the_denial_extension_a_handshake_is_closed_before_accepting() -> None:
    assert await refusal_events({}) == [
        {"type": "websocket.close", "code": CloseCode.POLICY_VIOLATION, "reason": "draining"}
    ]
