"""A load balancer in front of real servers, as much of one as a test of a drain needs: a TCP
proxy whose every new connection goes to the first backend whose ``/readyz`` answered 200 at
the last check, made every 20 ms. Open connections stay where they are, as behind a real
balancer, so a node that turns unready keeps its clients until it closes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress

import httpx

from tests.support.server import RunningServer
from tests.support.tcp_proxy import Proxy

__all__ = ["Balancer", "balancer"]

CHECK_INTERVAL = 0.02


class Balancer:
    """Routes new connections to the first ready one of ``backends`` (see the module doc)."""

    def __init__(self, backends: Sequence[RunningServer]) -> None:
        self.backends = list(backends)
        self.proxy = Proxy("127.0.0.1", self.backends[0].port)
        self.routed_to: RunningServer = self.backends[0]
        self._task: asyncio.Task[None] | None = None

    def url(self, scheme: str, path: str = "") -> str:
        return self.proxy.url(scheme, path)

    async def start(self) -> None:
        await self.proxy.start()
        self._task = asyncio.create_task(self._check())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self.proxy.close()

    async def _check(self) -> None:
        async with httpx.AsyncClient(timeout=0.5) as http:
            while True:
                for backend in self.backends:
                    try:
                        ready = (await http.get(f"{backend.http}/readyz")).status_code == 200
                    except httpx.HTTPError:
                        ready = False
                    if ready:
                        self.routed_to = backend
                        self.proxy.upstream_port = backend.port
                        break
                await asyncio.sleep(CHECK_INTERVAL)


@asynccontextmanager
async def balancer(backends: Sequence[RunningServer]) -> AsyncIterator[Balancer]:
    """A started :class:`Balancer`, closed when the block ends."""
    front = Balancer(backends)
    await front.start()
    try:
        yield front
    finally:
        await front.close()
