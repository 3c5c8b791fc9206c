"""``examples/rooms_app.py`` as the README runs it: ``uvicorn examples.rooms_app:app --workers 2
--ws roomcast:RoomcastWebSocketProtocol --ws-per-message-deflate false`` with
``ROOMCAST_ENGINE__URL`` on each of the machine's engines, driven by the seeds' own client
snippets (the ``websockets`` library). The room spans the two workers: what a client of one
says reaches the clients of the other, its leave notice too; a stalled client is closed with
3008 while the others get everything; bad input is closed with 1003, 1007 or 1009.

It also runs in one process with nothing set (``uvicorn examples.rooms_app:app``), checked
at the end with the docs' own three-client conversation. The same app under plain ``uvicorn
--workers 2`` and under gunicorn, side by side, is in ``test_embedded_servers.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.seed_chat import client_id_of, numbered_chat_across
from tests.support.server import ROOMCAST_PROTOCOL, RunningServer, start_app
from tests.support.slow_reader import small_buffer_client
from tests.support.worker_spread import local_port, one_per_worker
from tests.support.wsclient import closed_with, connect, recv, recv_n, recv_until

WAIT = 10.0
MESSAGE_LIMIT = 16384
QUEUE_LIMIT = 262144
APP_ENV = {
    "ROOMCAST_WEBSOCKET__MESSAGE_SIZE_LIMIT": str(MESSAGE_LIMIT),
    "ROOMCAST_CLIENT__QUEUE_MAX_SIZE": str(QUEUE_LIMIT),
}

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def two_workers(engine_url: str) -> Iterator[RunningServer]:
    server = start_app(
        "examples.rooms_app:app",
        "--workers",
        "2",
        *ROOMCAST_PROTOCOL,
        env={**APP_ENV, "ROOMCAST_ENGINE__URL": engine_url},
    )
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log, server.log


def chat_client(server: RunningServer) -> AbstractAsyncContextManager[ClientConnection]:
    """A new member of the chat, with an ID of its own."""
    return connect(f"{server.ws}/ws/{next(_ids)}", max_size=None)


async def test_what_one_worker_hears_reaches_the_other(two_workers: RunningServer) -> None:
    async with one_per_worker(two_workers, lambda: chat_client(two_workers), local_port) as (
        one,
        other,
    ):
        await numbered_chat_across(one, other, WAIT)
        await one.send("hello there")
        you_wrote = await recv_until(one, lambda m: str(m).startswith("You wrote: hello"), WAIT)
        assert you_wrote == "You wrote: hello there"
        said = f"Client #{client_id_of(one)} says: hello there"
        assert await recv_until(other, lambda m: m == said, WAIT) == said
        assert await recv_until(one, lambda m: m == said, WAIT) == said


async def test_the_leave_notice_reaches_the_other_worker(two_workers: RunningServer) -> None:
    async with one_per_worker(two_workers, lambda: chat_client(two_workers), local_port) as (
        one,
        other,
    ):
        await numbered_chat_across(one, other, WAIT)
        await one.close()
        left = f"Client #{client_id_of(one)} left the chat"
        assert await recv_until(other, lambda m: m == left, WAIT) == left


async def test_a_stalled_client_is_closed_with_3008_and_the_others_get_everything(
    two_workers: RunningServer,
) -> None:
    # 6 MB: more than the kernel buffers (up to 4 MB on Linux) and the queue limit can hold.
    count, body = 1500, "x" * 4096
    async with one_per_worker(two_workers, lambda: chat_client(two_workers), local_port) as (
        sender,
        listener,
    ):
        await numbered_chat_across(sender, listener, WAIT)
        stalled_id = next(_ids)
        async with small_buffer_client(
            two_workers.host, two_workers.port, f"/ws/{stalled_id}"
        ) as stalled:
            # In the room once the server relays its own words back to it.
            await stalled.send("here")
            said = f"Client #{stalled_id} says: here"
            await recv_until(listener, lambda m: m == said, WAIT)
            await recv_until(stalled, lambda m: m == said, WAIT)
            stalled.transport.pause_reading()
            prefix = f"Client #{client_id_of(sender)} says: {body}"
            left = f"Client #{stalled_id} left the chat"

            async def hear(ws: ClientConnection) -> tuple[list[int], bool]:
                """The sequence numbers of the sender's words in the order they came, read
                until all are there and the stalled client's leave notice too."""
                got: list[int] = []
                heard_left = False
                while len(got) < count or not heard_left:
                    message = str(await recv(ws, WAIT))
                    if message.startswith(prefix):
                        got.append(int(message[len(prefix) :]))
                    heard_left = heard_left or message == left
                return got, heard_left

            readers = [asyncio.create_task(hear(ws)) for ws in (sender, listener)]
            for n in range(count):
                await sender.send(f"{body}{n:08d}")
            results = await asyncio.wait_for(asyncio.gather(*readers), 60.0)
            assert results == [(list(range(count)), True)] * 2
            # The leave notice means the server gave up on the stalled client: once it reads
            # again (within the close timeout, after which the server drops the link), it
            # finds what fit in the buffers, then the close.
            stalled.transport.resume_reading()
            code, reason = await closed_with(stalled, 30.0)
        assert code == 3008
        assert "slow" in reason


@pytest.mark.parametrize(
    ("frame", "text", "code"),
    [
        (b"\x01\x02", False, 1003),
        (b"\xff\xfe not UTF-8", True, 1007),
        (b"x" * (MESSAGE_LIMIT + 1), True, 1009),
    ],
    ids=["binary", "invalid-utf8", "too-big"],
)
async def test_bad_input_is_closed_with_its_code_and_the_chat_goes_on(
    two_workers: RunningServer, frame: bytes, text: bool, code: int
) -> None:
    before = len(two_workers.log)
    async with chat_client(two_workers) as bad:
        await bad.send(frame, text=text)
        got_code, reason = await closed_with(bad, WAIT)
    assert got_code == code
    assert reason, "the close carries a reason the client can read"
    async with chat_client(two_workers) as after:
        await after.send("still here")
        wrote = await recv_until(after, lambda m: str(m).startswith("You wrote:"), WAIT)
        assert wrote == "You wrote: still here"
    assert "Traceback" not in two_workers.log[before:]


# --- one process, nothing set ------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_process() -> Iterator[RunningServer]:
    server = start_app("examples.rooms_app:app")
    try:
        yield server
    finally:
        server.stop()
    assert "Traceback" not in server.log, server.log


async def test_in_one_process_the_docs_conversation_goes_as_written(
    one_process: RunningServer,
) -> None:
    base = f"{one_process.ws}/ws"
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


def test_the_readme_states_the_examples_length_and_shows_its_code() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"`examples/rooms_app\.py` \((\d+) lines\)", readme)
    assert stated, "README.md no longer gives the example's length"
    code = (root / "examples" / "rooms_app.py").read_text(encoding="utf-8")
    assert len(code.splitlines()) == int(stated.group(1))
    endpoint = code[code.index("@app.websocket") :].strip()
    assert endpoint in readme, "the README shows the example's endpoint as it is"
