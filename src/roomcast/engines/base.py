"""The Broker interface: how the Nodes of several processes exchange publications."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from roomcast.publication import Publication

__all__ = ["Broker", "PublicationHandler"]

PublicationHandler = Callable[[str, Publication], None]
"""Called with (channel, publication) for each publication a broker delivers to this process."""


class Broker(ABC):
    """Pub/sub between Nodes.

    Delivery guarantee: **at most once**, in publish order per channel for one publisher. A
    broker delivers a publication to every process that is subscribed to its channel when the
    publication reaches the broker; a process that subscribes later does not get it, and one
    whose connection to the broker breaks may miss publications (the history store and the
    recovery protocol exist to close that gap). The handler is called from the event loop the
    broker was started on, and must not block.
    """

    @abstractmethod
    async def start(self, handler: PublicationHandler) -> None:
        """Connect and start delivering to ``handler``.

        Raises:
            EngineUnavailable: the broker cannot be reached.
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop delivering and release connections; safe to call twice."""

    @abstractmethod
    async def publish(self, channel: str, publication: Publication) -> None:
        """Send ``publication`` to every process subscribed to ``channel``, this one included.

        Raises:
            EngineUnavailable: the broker cannot take it now; nothing was published.
        """

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Start receiving ``channel``'s publications; returns once they will be delivered."""

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``'s publications."""
