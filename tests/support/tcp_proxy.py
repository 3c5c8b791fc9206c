"""A TCP proxy in front of a real server that a test can cut (refuse and abort connections),
freeze (a black hole) or have refuse new connections while it watches the attempts, to see how
a client of that server behaves when the link fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Proxy", "proxy_to"]


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host``:``upstream_port``.

    ``port`` is ephemeral on the first ``start`` and kept by later ones, so a client that
    reconnects finds the proxy again at the same address. ``upstream_port`` may be changed
    between connections (to move clients to another server).

    ``frozen``: bytes already flowing are swallowed, nothing is refused. ``mute_replies``:
    what the client sends still reaches the server, what the server answers is swallowed (an
    ambiguous failure: the request was carried out, its reply lost); ``mute_replies_after``
    (bytes) sets it once the client sent those bytes, right after forwarding them, so the
    one request that carries them is answered into the void. ``refusing``: each
    new connection is accepted and aborted before a byte, so a client's reconnect attempts
    fail while it goes on trying; ``refused`` is set whenever a connection was dropped
    unserved (refusing, or the upstream unreachable). When one side of a connection goes
    away the proxy aborts the other: no close frame is made up.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.frozen = False
        self.mute_replies = False
        self.mute_replies_after: bytes | None = None
        self.refusing = False
        self.refused = asyncio.Event()
        self.bytes_to_clients = 0
        """Bytes relayed from the server to clients, over every connection so far."""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def cut(self) -> None:
        """Refuse new connections and abort the open ones."""
        assert self._server is not None
        self._server.close()
        self.abort_connections()
        await self._server.wait_closed()

    async def close(self, seconds: float = 5.0) -> None:
        """Cut, then wait (at most ``seconds``) until every connection's task has ended, so
        that none is left for the event loop's teardown to cancel."""
        if self.serving:
            await self.cut()
        self.abort_connections()
        pending = [task for task in self._connections if not task.done()]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), seconds)

    def abort_connections(self) -> None:
        """Abort the open connections; new ones are still accepted."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        if self.refusing:
            self.refused.set()
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            self.refused.set()
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, replies: bool
        ) -> None:
            tail = b""  # what a marker split between two reads needs
            try:
                while data := await source.read(65536):
                    if not self.frozen and not (replies and self.mute_replies):
                        sink.write(data)
                        if replies:
                            self.bytes_to_clients += len(data)
                        await sink.drain()
                    marker = self.mute_replies_after
                    if not replies and marker:
                        if marker in tail + data:
                            self.mute_replies, self.mute_replies_after = True, None
                        tail = (tail + data)[-len(marker) :]
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    def url(self, scheme: str, path: str = "") -> str:
        """``scheme://127.0.0.1:port/path``, through the proxy."""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @property
    def redis_url(self) -> str:
        return self.url("redis", "/0")


@asynccontextmanager
async def proxy_to(port: int, host: str = "127.0.0.1") -> AsyncIterator[Proxy]:
    """A started proxy to ``host:port``, closed when the block ends."""
    proxy = Proxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
