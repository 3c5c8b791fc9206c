"""The publisher: one connection in the main process that sends stamped publications.

Two ways, chosen per target (:meth:`bench.targets.Target.publish_via`):

* ``ws`` - a publisher WebSocket speaking the target's dialect. Frames are written back to back;
  TCP flow control is the only brake ("as fast as the server accepts them"), and the order of
  publications is the order on the wire.
* ``http`` - ``POST`` to the target's publish endpoint on one keep-alive connection, one request
  after the other (each waits for its response).

The stamp is taken immediately before the bytes are handed to the socket.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from types import TracebackType

import httpx

from bench.dialects import get_dialect
from bench.payload import make_payload
from bench.targets import HttpPublish, Target
from bench.wsclient import WsConn, connect

__all__ = ["HttpPublisher", "PublishError", "Publisher", "WsPublisher", "make_publisher"]

HOST = "127.0.0.1"


class PublishError(RuntimeError):
    """The server refused a publication (HTTP status or error reply)."""


class Publisher(ABC):
    """Sends publications to one channel; use as an async context manager."""

    via: str

    def __init__(self, port: int, channel: str, timeout: float) -> None:
        self.port = port
        self.channel = channel
        self.timeout = timeout
        self.errors: list[str] = []

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def publish(self, seq: int, size: int) -> None:
        """Send publication number ``seq`` of about ``size`` bytes."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.close()


class WsPublisher(Publisher):
    """Publishes over a WebSocket in the target's dialect."""

    via = "ws"

    def __init__(self, port: int, channel: str, timeout: float, dialect: str) -> None:
        super().__init__(port, channel, timeout)
        self.dialect = get_dialect(dialect)
        self._conn: WsConn | None = None

    async def start(self) -> None:
        async with asyncio.timeout(self.timeout):
            self._conn = await connect(HOST, self.port, self.dialect.publisher_path)
            await self.dialect.open_publisher(self._conn)

    async def publish(self, seq: int, size: int) -> None:
        assert self._conn is not None, "publisher not started"
        self._conn.send(self.dialect.publish_frame(self.channel, make_payload(seq, size)))
        await self._conn.drain()

    async def close(self) -> None:
        if self._conn is not None:
            self.errors.extend(self.dialect.errors())
            self._conn.abort()
            self._conn = None


class HttpPublisher(Publisher):
    """Publishes with HTTP POSTs on one keep-alive connection."""

    via = "http"

    def __init__(self, port: int, channel: str, timeout: float, spec: HttpPublish) -> None:
        super().__init__(port, channel, timeout)
        self.spec = spec
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=f"http://{HOST}:{self.port}",
            headers=self.spec.headers,
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=1),
        )

    async def publish(self, seq: int, size: int) -> None:
        assert self._client is not None, "publisher not started"
        body = self.spec.body(self.channel, make_payload(seq, size))
        response = await self._client.post(self.spec.path, content=body)
        if response.status_code >= 300 or b'"error"' in response.content:
            message = f"HTTP {response.status_code}: {response.content[:200]!r}"
            if len(self.errors) < 5:
                self.errors.append(message)
            raise PublishError(message)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def make_publisher(target: Target, port: int, channel: str, via: str, timeout: float) -> Publisher:
    """The publisher for ``target`` over ``via`` (``ws`` or ``http``)."""
    if via == "http":
        if target.http_publish is None:
            raise ValueError(f"{target.name} has no HTTP publish endpoint")
        return HttpPublisher(port, channel, timeout, target.http_publish)
    return WsPublisher(port, channel, timeout, target.dialect)
