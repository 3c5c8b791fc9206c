"""The seed endpoints, driven over real sockets the way the seeds' own clients drive them."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest

from tests.support.server import RunningServer
from tests.support.wsclient import closed_with, connect, recv, recv_n


async def test_echo(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws/echo") as ws:
        await ws.send("hello")
        assert await recv(ws) == "Echo: hello"
        await ws.send("again")
        assert await recv(ws) == "Echo: again"


async def test_message_text(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws") as ws:
        await ws.send("Hello, World!")
        assert await recv(ws) == "Message text was: Hello, World!"


async def test_numbered_chat_three_clients_one_leaves(clean_log: RunningServer) -> None:
    base = f"{clean_log.ws}/ws"
    async with connect(f"{base}/1") as one, connect(f"{base}/2") as two:
        three = await connect(f"{base}/3")
        await one.send("hi all")
        assert await recv_n(one, 2) == ["You wrote: hi all", "Client #1 says: hi all"]
        assert await recv(two) == "Client #1 says: hi all"
        assert await recv(three) == "Client #1 says: hi all"
        await three.send("bye")
        assert await recv_n(three, 2) == ["You wrote: bye", "Client #3 says: bye"]
        await three.close()
        for ws in (one, two):
            assert await recv_n(ws, 2) == ["Client #3 says: bye", "Client #3 left the chat"]


async def test_numbered_chat_rejects_non_integer_id(clean_log: RunningServer) -> None:
    # /ws/abc matches no route: the handshake is refused rather than joining a chat.
    with pytest.raises(Exception, match=r"403|404"):
        async with connect(f"{clean_log.ws}/ws/abc"):
            pass


async def test_anonymous_chat(clean_log: RunningServer) -> None:
    url = f"{clean_log.ws}/ws/chat"
    async with connect(url) as one, connect(url) as two:
        leaver = await connect(url)
        await two.send("anyone?")
        for ws in (one, two, leaver):
            assert await recv(ws) == "Client says: anyone?"
        await leaver.close()
        assert await recv(one) == "A client left the chat"
        assert await recv(two) == "A client left the chat"


async def test_items_requires_cookie_or_token(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/items/foo/ws") as ws:
        code, reason = await closed_with(ws)
    assert code == 1008
    assert "cookie" in reason
    assert "token" in reason


async def test_items_with_token_and_q(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/items/foo/ws?token=some-token&q=3") as ws:
        await ws.send("hello")
        assert await recv_n(ws, 3) == [
            "Session cookie or query token value is: some-token",
            "Query parameter q is: 3",
            "Message text was: hello, for item ID: foo",
        ]


async def test_items_with_session_cookie_and_no_q(clean_log: RunningServer) -> None:
    headers = {"Cookie": "session=cookie-value"}
    async with connect(f"{clean_log.ws}/items/42/ws", additional_headers=headers) as ws:
        await ws.send("hey")
        assert await recv_n(ws, 2) == [
            "Session cookie or query token value is: cookie-value",
            "Message text was: hey, for item ID: 42",
        ]


@pytest.mark.parametrize(
    ("query", "reason_part"), [("", "required"), ("?token=wrong", "invalid token")]
)
async def test_secure_refuses_missing_or_wrong_token(
    clean_log: RunningServer, query: str, reason_part: str
) -> None:
    async with connect(f"{clean_log.ws}/ws/secure{query}") as ws:
        code, reason = await closed_with(ws)
    assert code == 1008
    assert reason_part in reason


async def test_secure_with_right_token(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws/secure?token=secret-token") as ws:
        assert await recv(ws) == "Hello, authenticated_user! Welcome to the secure WebSocket."
        await ws.send("psst")
        assert await recv(ws) == "You said: psst"


async def test_stream_sends_ten_messages_then_closes_normally(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws/stream") as ws:
        assert await recv_n(ws, 10) == [f"Streaming message {n}" for n in range(1, 11)]
        code, _ = await closed_with(ws)
    assert code == 1000


async def test_methods_text(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws/methods_text") as ws:
        await ws.send("plain")
        assert await recv(ws) == "Server received: plain"


async def test_methods_bytes(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws/methods_bytes") as ws:
        await ws.send(b"\x00\x01binary")
        assert await recv(ws) == b"Server received: \x00\x01binary"


async def test_methods_json(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws/methods_json") as ws:
        await ws.send(json.dumps({"a": [1, 2], "b": "ü"}))
        reply = await recv(ws)
        assert isinstance(reply, str)
        assert json.loads(reply) == {
            "message": "Server received your JSON",
            "data": {"a": [1, 2], "b": "ü"},
        }


async def test_methods_raw_text_and_bytes(clean_log: RunningServer) -> None:
    async with connect(f"{clean_log.ws}/ws/methods_raw") as ws:
        await ws.send("as text")
        assert await recv(ws) == "Raw echo: as text"
        await ws.send(b"as bytes")
        assert await recv(ws) == b"Raw echo: as bytes"


async def test_clock_pushes_and_echoes_independently(clean_log: RunningServer) -> None:
    """Replies come back at once while the 0.3 s ticks keep arriving between them."""
    loop = asyncio.get_running_loop()
    async with connect(f"{clean_log.ws}/ws/clock") as ws:
        ticks: list[str] = []
        for n in range(8):
            sent = loop.time()
            await ws.send(f"m{n}")
            while True:
                message = await recv(ws, seconds=2.0)
                if message == f"Message received: m{n}":
                    assert loop.time() - sent < 0.25, "a reply waited for the timer"
                    break
                assert isinstance(message, str)
                assert message.startswith("It is: ")
                ticks.append(message)
            await asyncio.sleep(0.15)
    assert len(ticks) >= 2, ticks
    for tick in ticks:
        stamp = datetime.fromisoformat(tick.removeprefix("It is: "))
        offset = stamp.utcoffset()
        assert offset is not None
        assert offset.total_seconds() == 0
