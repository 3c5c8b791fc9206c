"""What application hooks see of a client, and the hooks an embedding app can install."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "NO_CONNECT_DETAILS",
    "ClientContext",
    "ConnectDetails",
    "Credentials",
    "Hooks",
    "MessageHandler",
    "PublishHook",
    "RPCHandler",
    "SubscribeHook",
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a connection is, as decided by the app's connect hook or a connection token.

    ``user`` empty means anonymous. ``expire_at`` (Unix seconds, 0 for never) makes the
    connection expire unless the client refreshes it. ``info`` is any JSON-encodable value that
    other clients see in presence and in this client's publications. ``channels`` are
    subscribed on the server's side at connect. ``state`` is kept for the app's own hooks.
    """

    user: str
    expire_at: int = 0
    info: Any = None
    channels: tuple[str, ...] = ()
    state: Any = None


@dataclass(frozen=True, slots=True)
class ConnectDetails:
    """What the client said about itself in its ``connect`` command; as untrusted as anything
    a client sends.

    ``headers`` are the SDKs' header emulation (centrifuge-js ``headers``, sent in the connect
    command because a browser cannot set a WebSocket's own), names lower-cased; they are not
    the HTTP headers of the WebSocket handshake, which an ``authenticate`` dependency reads.
    ``data`` is the connect's JSON payload, decoded (None when absent). ``name`` and
    ``version`` name the client SDK or app, ``profile`` the kind of view it is.
    """

    name: str = ""
    version: str = ""
    data: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    profile: str = ""


NO_CONNECT_DETAILS = ConnectDetails()
"""What a client that has not connected yet (or said nothing about itself) told."""


@dataclass(frozen=True, slots=True)
class ClientContext:
    """One connected client, as hooks see it; ``connect`` is what it said in its connect."""

    client: str
    user: str
    info: bytes = b""
    state: Any = None
    connect: ConnectDetails = NO_CONNECT_DETAILS


SubscribeHook = Callable[[ClientContext, str], Awaitable[bool]]
"""``(client, channel) -> allowed``; may raise ``ClientError`` to refuse with its own code."""

PublishHook = Callable[[ClientContext, str, Any], Awaitable[bool]]
"""``(client, channel, data) -> allowed``; may raise ``ClientError``."""

RPCHandler = Callable[[ClientContext, Any], Awaitable[Any]]
"""``(client, data) -> result``, any JSON-encodable result; may raise ``ClientError``."""

MessageHandler = Callable[[ClientContext, Any], Awaitable[None]]
"""``(client, data)`` for a client's asynchronous ``send``; nothing is replied."""


@dataclass(slots=True)
class Hooks:
    """The app's say in what clients may do; when a hook is set, it decides instead of config."""

    subscribe: SubscribeHook | None = None
    publish: PublishHook | None = None
    message: MessageHandler | None = None
    rpc: dict[str, RPCHandler] = field(default_factory=dict)
    publication_models: dict[str, type[Any]] = field(default_factory=dict)
    """Namespace name ("" for none) -> pydantic model that client publications must validate."""
