"""Clients spread over the worker processes of one server, for tests of several workers behind
one listening socket (``roomcast serve --workers N``, ``uvicorn --workers N``, gunicorn).

Which worker serves a connection is read from ``/proc`` (``tests.support.process_tree``): the
worker holding the server's end of its socket. Connections are opened until there is one on
each of two workers, within a bounded number of attempts and time (a worker that is still
starting takes none).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TypeVar

from websockets.asyncio.client import ClientConnection

from tests.support.process_tree import children, serving_process
from tests.support.server import RunningServer

__all__ = ["ATTEMPTS", "SPREAD_WITHIN", "local_port", "one_per_worker"]

SPREAD_WITHIN = 30.0
"""How long a test may open connections to find both workers (one may still be starting)."""
ATTEMPTS = 200

_Client = TypeVar("_Client")


def local_port(ws: ClientConnection) -> int:
    """The client's own port of a ``websockets`` connection."""
    port: int = ws.local_address[1]
    return port


@asynccontextmanager
async def one_per_worker(
    server: RunningServer,
    open_client: Callable[[], AbstractAsyncContextManager[_Client]],
    local_port: Callable[[_Client], int],
) -> AsyncIterator[tuple[_Client, _Client]]:
    """Two clients that two distinct worker processes of ``server`` serve, open until the
    block ends: opens clients one by one, keeping the first of each worker, closing the rest."""
    deadline = time.monotonic() + SPREAD_WITHIN
    async with AsyncExitStack() as kept:
        by_worker: dict[int, _Client] = {}
        for _ in range(ATTEMPTS):
            if len(by_worker) == 2 or time.monotonic() > deadline:
                break
            async with AsyncExitStack() as attempt:
                client = await attempt.enter_async_context(open_client())
                workers = children(server.process.pid)
                worker = serving_process(workers, server.port, local_port(client))
                assert worker is not None, f"no child of {server.process.pid} serves it"
                if worker not in by_worker:
                    by_worker[worker] = client
                    kept.push_async_exit(attempt.pop_all())
            await asyncio.sleep(0.02)
        assert len(by_worker) == 2, f"every connection went to worker(s) {sorted(by_worker)}"
        assert server.process.pid not in by_worker
        first, second = by_worker.values()
        yield first, second
