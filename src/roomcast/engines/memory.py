"""The in-memory broker: one process, no network. The reference implementation."""

from __future__ import annotations

from roomcast.engines.base import Broker, PublicationHandler
from roomcast.errors import EngineUnavailable
from roomcast.publication import Publication

__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    """Delivers each publication synchronously to this process' handler; nothing crosses processes.

    Delivery is exactly once and in order within the process, a stronger form of the
    interface's at-most-once guarantee.
    """

    def __init__(self) -> None:
        self._handler: PublicationHandler | None = None
        self._channels: set[str] = set()

    async def start(self, handler: PublicationHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        self._handler = None
        self._channels.clear()

    async def publish(self, channel: str, publication: Publication) -> None:
        handler = self._handler
        if handler is None:
            raise EngineUnavailable("the memory broker is not started")
        if channel in self._channels:
            handler(channel, publication)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
