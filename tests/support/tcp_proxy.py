"""A TCP proxy in front of a real server that a test can cut (refuse and abort connections) or
freeze (a black hole), to see how a client of that server behaves when the link fails."""

from __future__ import annotations

import asyncio

__all__ = ["Proxy"]


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``upstream_host``:``upstream_port``.

    ``port`` is ephemeral on the first ``start`` and kept by later ones, so a client that
    reconnects finds the proxy again at the same address. ``upstream_port`` may be changed
    between connections (to move clients to another server).
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = 0
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

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

    def abort_connections(self) -> None:
        """Abort the open connections; new ones are still accepted."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    if not self.frozen:
                        sink.write(data)
                        await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"
