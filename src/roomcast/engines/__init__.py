"""Engines: the broker and stores behind a Node, chosen by URL scheme, imported only when used."""

from __future__ import annotations

from urllib.parse import urlsplit

from roomcast.engines.base import Broker, PublicationHandler
from roomcast.errors import ConfigurationError

__all__ = ["Broker", "PublicationHandler", "create_broker"]

_PLANNED = ("redis", "rediss", "postgresql", "postgres", "nats")


def create_broker(url: str) -> Broker:
    """The broker for ``url``'s scheme (``memory://``).

    Raises:
        ConfigurationError: the scheme names no broker this version provides.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        from roomcast.engines.memory import MemoryBroker

        return MemoryBroker()
    if scheme in _PLANNED:
        raise ConfigurationError(
            f"broker {scheme}:// is not available in this version of roomcast; use memory://"
        )
    raise ConfigurationError(f"unknown broker URL scheme {scheme!r} in {url!r}; use memory://")
