"""``examples/rooms_app.py`` under the servers users run an embedded app on, two workers each,
on Redis: plain ``uvicorn``, ``uvicorn --ws roomcast:RoomcastWebSocketProtocol`` and
``gunicorn -k roomcast.workers.UvicornWorker``. The room spans the workers under all three;
the guarantees of roomcast's protocol come only with the last two, and this says which:

- a client that stopped reading is cut off and its connection closed by the server (aborted
  after the close timeout) instead of left open until it reads again;
- shutdown closes with 1001 (going away) instead of uvicorn's 1012;
- a text frame that is not UTF-8 is closed with 1007 and a reason, without a traceback;
- without it, the first connection of each worker logs a warning naming the fix.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Callable, Iterator

import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.process_tree import connection_open
from tests.support.seed_chat import client_id_of, numbered_chat_across
from tests.support.server import ROOMCAST_PROTOCOL, RunningServer, start_app, start_gunicorn
from tests.support.shared_engines import SHARED_ENGINES, unique_prefix
from tests.support.slow_reader import small_buffer_client
from tests.support.worker_spread import local_port, one_per_worker
from tests.support.wsclient import closed_with, connect, recv, recv_until

WAIT = 10.0
CLOSE_TIMEOUT = 10.0
"""uvicorn's close timeout, after which roomcast's protocol aborts a peer that never answers."""
WARNING = "does not run roomcast's WebSocket protocol"
APP = "examples.rooms_app:app"
ENV = {"ROOMCAST_CLIENT__QUEUE_MAX_SIZE": "262144", "ROOMCAST_CLIENT__LAG_TIMEOUT": "1s"}

SERVERS: dict[str, Callable[[dict[str, str]], RunningServer]] = {
    "uvicorn": lambda env: start_app(APP, "--workers", "2", env=env),
    "uvicorn-ws-roomcast": lambda env: start_app(
        APP, "--workers", "2", *ROOMCAST_PROTOCOL, env=env
    ),
    "gunicorn-roomcast-worker": lambda env: start_gunicorn(
        APP, "-k", "roomcast.workers.UvicornWorker", "--workers", "2", env=env
    ),
}
WITH_ROOMCAST_PROTOCOL = {"uvicorn-ws-roomcast", "gunicorn-roomcast-worker"}

_ids = itertools.count(1000)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    engine = SHARED_ENGINES["redis"]
    engine.require("the embedded-server tests")
    prefix = unique_prefix()
    yield engine.url(prefix)
    engine.cleanup(prefix)


@pytest.fixture(scope="module", params=sorted(SERVERS))
def served(request: pytest.FixtureRequest, redis_url: str) -> Iterator[tuple[str, RunningServer]]:
    kind: str = request.param
    server = SERVERS[kind]({**ENV, "ROOMCAST_ENGINE__URL": redis_url})
    try:
        yield kind, server
    finally:
        server.stop()


def chat_client(server: RunningServer) -> object:
    return connect(f"{server.ws}/ws/{next(_ids)}", max_size=None)


async def test_the_room_spans_the_workers(served: tuple[str, RunningServer]) -> None:
    _, server = served
    async with one_per_worker(server, lambda: chat_client(server), local_port) as (one, other):
        await numbered_chat_across(one, other, WAIT)
        await one.close()
        left = f"Client #{client_id_of(one)} left the chat"
        assert await recv_until(other, lambda m: m == left, WAIT) == left


async def test_a_stalled_client_is_closed_by_the_server_only_with_roomcasts_protocol(
    served: tuple[str, RunningServer],
) -> None:
    kind, server = served
    count, body = 1500, "x" * 4096  # 6 MB: past the kernel's buffers and the queue limit
    async with connect(f"{server.ws}/ws/{next(_ids)}", max_size=None) as sender:
        stalled_id = next(_ids)
        async with small_buffer_client(server.host, server.port, f"/ws/{stalled_id}") as stalled:
            await stalled.send("here")
            await recv_until(stalled, lambda m: m == f"Client #{stalled_id} says: here", WAIT)
            stalled.transport.pause_reading()
            prefix = f"Client #{client_id_of(sender)} says: {body}"

            async def hear_all(ws: ClientConnection) -> int:
                heard = 0
                while heard < count:
                    if str(await recv(ws, WAIT)).startswith(prefix):
                        heard += 1
                return heard

            reader = asyncio.create_task(hear_all(sender))
            for n in range(count):
                await sender.send(f"{body}{n:08d}")
            assert await asyncio.wait_for(reader, 60.0) == count, "the others get everything"
            client_port = local_port(stalled)
            # It never reads again. With roomcast's protocol the server gives up on it: the
            # close goes out behind the full buffer and the link is aborted after the close
            # timeout. Without it, the server waits for the client for as long as it lives.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CLOSE_TIMEOUT + 5.0
            # /proc changes with nothing to await: poll it.
            while connection_open(server.port, client_port) and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            closed = not connection_open(server.port, client_port)
    assert closed is (kind in WITH_ROOMCAST_PROTOCOL), f"{kind}: closed={closed}"


async def test_invalid_utf8_is_closed_with_1007(served: tuple[str, RunningServer]) -> None:
    kind, server = served
    before = len(server.log)
    async with connect(f"{server.ws}/ws/{next(_ids)}") as bad:
        await bad.send(b"\xff\xfe not UTF-8", text=True)
        code, reason = await closed_with(bad, WAIT)
    assert code == 1007
    if kind in WITH_ROOMCAST_PROTOCOL:
        assert reason == "text frame is not valid UTF-8"
        assert "Traceback" not in server.log[before:]
    # (uvicorn's own protocol closes without a reason and logs a traceback.)


def test_only_the_plain_server_warns_about_the_missing_protocol(
    served: tuple[str, RunningServer],
) -> None:
    kind, server = served
    assert (WARNING in server.log) is (kind not in WITH_ROOMCAST_PROTOCOL), server.log


@pytest.mark.parametrize("kind", sorted(SERVERS))
async def test_shutdown_closes_with_going_away_only_with_roomcasts_protocol(
    kind: str, redis_url: str
) -> None:
    server = SERVERS[kind]({**ENV, "ROOMCAST_ENGINE__URL": redis_url})
    try:
        async with connect(f"{server.ws}/ws/{next(_ids)}") as ws:
            await ws.send("up")
            assert await recv(ws, WAIT) == "You wrote: up"
            server.process.send_signal(signal.SIGTERM)
            code, reason = await closed_with(ws, WAIT)
    finally:
        server.stop()
    if kind in WITH_ROOMCAST_PROTOCOL:
        assert (code, reason) == (1001, "server shutting down")
    else:
        assert code == 1012  # uvicorn's "service restart"
    assert "Traceback" not in server.log, server.log
