"""``ManagedSocket`` on a real ``roomcast serve``, through the seed endpoints written on it: bad
input, dead clients and slow clients are each handled alone, everyone else keeps going."""

from __future__ import annotations

import asyncio
import re
import signal
import socket

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import SEED_ENV
from tests.support.server import RunningServer, start_server
from tests.support.wsclient import TIMEOUT, closed_with, connect, recv, recv_n

MESSAGE_LIMIT = int(SEED_ENV["ROOMCAST_WEBSOCKET__MESSAGE_SIZE_LIMIT"])
QUEUE_LIMIT = int(SEED_ENV["ROOMCAST_CLIENT__QUEUE_MAX_SIZE"])


async def assert_echo_still_serves(server: RunningServer) -> None:
    async with connect(f"{server.ws}/ws/echo") as ws:
        await ws.send("still there?")
        assert await recv(ws) == "Echo: still there?"


@pytest.mark.parametrize(
    ("path", "payload", "code", "reason_part"),
    [
        ("/ws/echo", b"\x01\x02", 1003, "text expected"),
        ("/ws/methods_text", b"bytes", 1003, "text expected"),
        ("/ws/methods_bytes", "text", 1003, "binary expected"),
        ("/ws/methods_json", "{not json", 1007, "invalid JSON"),
        ("/ws/methods_json", b"{}", 1003, "text expected"),
        ("/ws/echo", "x" * (MESSAGE_LIMIT + 1), 1009, ""),
        ("/ws/methods_raw", b"x" * (MESSAGE_LIMIT + 1), 1009, ""),
    ],
)
async def test_bad_input_closes_with_code_and_reason(
    clean_log: RunningServer, path: str, payload: str | bytes, code: int, reason_part: str
) -> None:
    before = len(clean_log.log)
    async with connect(f"{clean_log.ws}{path}", max_size=None) as ws:
        await ws.send(payload)
        got_code, reason = await closed_with(ws)
    assert got_code == code
    assert reason, "the close carries a reason the client can read"
    assert reason_part in reason
    await assert_echo_still_serves(clean_log)
    written = clean_log.log[before:]
    assert "Traceback" not in written
    assert "ERROR" not in written


async def test_bad_input_is_logged_in_one_line(clean_log: RunningServer) -> None:
    before = len(clean_log.log)
    async with connect(f"{clean_log.ws}/ws/methods_bytes") as ws:
        await ws.send("text where bytes belong")
        await closed_with(ws)
    await asyncio.sleep(0.2)
    lines = [line for line in clean_log.log[before:].splitlines() if "binary expected" in line]
    assert len(lines) == 1, clean_log.log[before:]


async def test_client_killed_mid_broadcast(clean_log: RunningServer) -> None:
    """A chat member whose TCP connection dies mid-broadcast costs the others nothing."""
    url = f"{clean_log.ws}/ws/chat"
    async with connect(url) as sender, connect(url) as listener:
        victim = await connect(url)
        count = 300
        for n in range(count):
            await sender.send(f"m{n}")
            if n == 50:
                victim.transport.abort()  # no close frame: the process died
        expected = [f"Client says: m{n}" for n in range(count)]
        # The victim's departure is announced like any other, wherever it falls in the stream.
        got = await recv_n(listener, count + 1)
        assert got.count("A client left the chat") == 1
        assert [m for m in got if m != "A client left the chat"] == expected
        got = await recv_n(sender, count + 1)
        assert [m for m in got if m != "A client left the chat"] == expected


_SLOW_LINE = re.compile(r"closing a slow connection: \d+ bytes queued")


async def wait_for_log(
    server: RunningServer, pattern: re.Pattern[str], *, since: int, seconds: float
) -> None:
    """Return once the server's log after offset ``since`` matches ``pattern``."""
    async with asyncio.timeout(seconds):
        # The log is another process' output: there is nothing to await but its growth.
        while not pattern.search(server.log, since):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def _small_buffer_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.setblocking(False)
    return sock


async def test_slow_reader_is_cut_off_and_others_get_everything(
    clean_log: RunningServer,
) -> None:
    url = f"{clean_log.ws}/ws/chat"
    log_start = len(clean_log.log)
    count, size = 1500, 4096
    async with connect(url, max_size=None) as sender, connect(url, max_size=None) as fast:
        slow: ClientConnection = await connect(
            url, sock=_small_buffer_socket(clean_log.host, clean_log.port), max_size=None
        )
        slow.transport.pause_reading()
        body = "x" * size

        async def read_all(ws: ClientConnection) -> list[str]:
            """The sequence numbers of the data messages; the slow client's leave may interleave."""
            numbers: list[str] = []
            while len(numbers) < count:
                message = str(await recv(ws, seconds=10.0))
                if message != "A client left the chat":
                    numbers.append(message[-8:])
            return numbers

        async def cut_off() -> tuple[int, str]:
            """Resume reading once the server has given up on the slow client; its close code."""
            await wait_for_log(clean_log, _SLOW_LINE, since=log_start, seconds=20.0)
            slow.transport.resume_reading()
            return await closed_with(slow, seconds=15.0)

        readers = [asyncio.create_task(read_all(ws)) for ws in (sender, fast)]
        slow_closed = asyncio.create_task(cut_off())
        for n in range(count):
            await sender.send(f"{body}{n:08d}")
        results = await asyncio.wait_for(asyncio.gather(*readers), 30.0)
        expected = [f"{n:08d}" for n in range(count)]
        assert results == [expected, expected]
        code, reason = await asyncio.wait_for(slow_closed, 30.0)
        assert code == 3008
        assert "slow" in reason
    # The sender and fast reader get the slow client's departure, not an error.
    async with connect(url) as probe, connect(url) as other:
        await probe.send("after")
        assert await recv(other) == "Client says: after"
    assert _SLOW_LINE.search(clean_log.log, log_start)


async def test_ctrl_c_closes_websockets_with_going_away() -> None:
    server = start_server()
    try:
        async with connect(f"{server.ws}/ws/echo") as ws, connect(f"{server.ws}/ws/chat") as c:
            await ws.send("up")
            assert await recv(ws) == "Echo: up"
            server.process.send_signal(signal.SIGINT)
            assert await closed_with(ws) == (1001, "server shutting down")
            assert (await closed_with(c))[0] == 1001
        # uvicorn re-raises the SIGINT after its graceful shutdown: 128 + 2, as for any Ctrl-C.
        assert await asyncio.to_thread(server.process.wait, TIMEOUT) == 130
    finally:
        server.stop(signal.SIGKILL)
    assert "Application shutdown complete" in server.log
    assert "Traceback" not in server.log


def test_workers_need_a_shared_broker() -> None:
    with pytest.raises(RuntimeError, match="needs a broker shared by the workers"):
        start_server("--workers", "2")
