"""What application hooks see of a client, what they may answer, and the hooks an embedding
app can install (``Hub.on_connect``, ``on_subscribe``, ... set them).

A hook that raises ``ClientError`` refuses the client's command with the error's code. Any
other exception is the app's bug: it is logged once, with its traceback, and answered as an
internal error (error 100 to a command, disconnect 3004 where no command waits for an answer,
as for a refresh on the server's initiative); the connection's loop goes on. Hooks that only
hear of something (``on_disconnect``, ``on_unsubscribe``, ``on_message``) change nothing by
raising but the log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

__all__ = [
    "NO_CONNECT_DETAILS",
    "ClientContext",
    "ConnectDetails",
    "ConnectHook",
    "ConnectReply",
    "Credentials",
    "DisconnectHook",
    "Hooks",
    "MessageHandler",
    "PublishHook",
    "RPCHandler",
    "RefreshHook",
    "RefreshReply",
    "SubscribeHook",
    "SubscribeReply",
    "UnsubscribeCause",
    "UnsubscribeHook",
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


@dataclass(frozen=True, slots=True)
class ConnectReply:
    """What ``on_connect`` may answer.

    ``data`` (any JSON-encodable value) goes to the client in the connect reply (the SDKs'
    ``connected`` event carries it); ``info``, when not None, becomes the connection's info
    (what presence and the client's publications show), replacing the token's or the
    credentials'; ``channels`` are subscribed on the server's side, besides the credentials'.
    """

    data: Any = None
    info: Any = None
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RefreshReply:
    """What ``on_refresh`` answers when a connection reaches its expiry.

    ``expire_at``: the new expiry (Unix seconds, 0 for never). ``expired``: end the
    connection instead, with ``DisconnectCode.EXPIRED`` (3005). ``info``, when not None,
    becomes the connection's info.
    """

    expire_at: int = 0
    expired: bool = False
    info: Any = None


@dataclass(frozen=True, slots=True)
class SubscribeReply:
    """What ``on_subscribe`` may answer instead of ``True``: the subscribe is allowed, and

    - ``data`` (any JSON-encodable value) goes to the client in the subscribe reply (the SDKs'
      ``subscribed`` event carries it);
    - ``info``, when not None, is this subscription's channel info (what a subscription
      token's ``info`` claim would be);
    - each option, when not None, overrides what the namespace and the client's request
      decide for this subscription: ``presence`` (enter the channel's presence),
      ``join_leave`` (announce this client's join and leave), ``push_join_leave`` (send it the
      channel's joins and leaves), ``recovery`` and ``positioning`` (which need the
      namespace's history: True on a channel without history is refused, logged as the
      app's mistake, and answered with error 100).
    """

    data: Any = None
    info: Any = None
    presence: bool | None = None
    join_leave: bool | None = None
    push_join_leave: bool | None = None
    recovery: bool | None = None
    positioning: bool | None = None


class UnsubscribeCause(IntEnum):
    """Why a subscription ended when the client got no unsubscribe push, as ``on_unsubscribe``
    hears it; the numbers centrifuge (Go) gives them. They never travel on the wire: a push's
    own codes are ``protocol.UnsubscribeCode`` (2000 and up)."""

    CLIENT = 0
    """The client unsubscribed."""
    DISCONNECT = 1
    """The connection ended."""

    @property
    def reason(self) -> str:
        """The short reason ``on_unsubscribe`` hears with this code."""
        return _CAUSE_REASONS[self]


_CAUSE_REASONS: Final = {
    UnsubscribeCause.CLIENT: "client unsubscribed",
    UnsubscribeCause.DISCONNECT: "client disconnected",
}

SubscribeHook = Callable[[ClientContext, str], Awaitable[bool | SubscribeReply]]
"""``(client, channel) -> allowed``: False refuses (error 103), True allows as the namespace
says, a ``SubscribeReply`` allows with data and options of its own; may raise ``ClientError``
to refuse with its own code."""

PublishHook = Callable[[ClientContext, str, Any], Awaitable[bool]]
"""``(client, channel, data) -> allowed``; may raise ``ClientError``. ``data`` is the decoded
JSON, or ``bytes`` when a Protobuf client sent bytes that are not JSON (so in every hook)."""

RPCHandler = Callable[[ClientContext, Any], Awaitable[Any]]
"""``(client, data) -> result``, any JSON-encodable result; may raise ``ClientError``. A
``bytes`` result reaches a Protobuf client as those bytes (a JSON client gets their base64)."""

MessageHandler = Callable[[ClientContext, Any], Awaitable[None]]
"""``(client, data)`` for a client's asynchronous ``send``; nothing is replied."""

ConnectHook = Callable[[ClientContext, ConnectDetails], Awaitable[ConnectReply | None]]
"""``(client, event) -> reply``, once per connection, after its credentials are known (from a
token or the app's dependency) and before the connect reply; ``client.user`` is whom they
name. None answers nothing more; may raise ``ClientError`` to refuse the connect."""

DisconnectHook = Callable[[ClientContext, int, str], Awaitable[None]]
"""``(client, code, reason)``, exactly once for every connection that completed its connect,
however it ended: the close the server sent (a disconnect, 3008 for a slow client, 1011 after
a crash, 1001 at shutdown), else the one the client sent (1000 for a clean close, 1006 when
its TCP connection died)."""

UnsubscribeHook = Callable[[ClientContext, str, int, str], Awaitable[None]]
"""``(client, channel, code, reason)`` whenever a subscription ends: ``code`` is the
``protocol.UnsubscribeCode`` of the push the client got (2000 server, 2500 insufficient
state, 2501 expired), or an ``UnsubscribeCause`` (0 the client unsubscribed, 1 the
connection ended, before ``on_disconnect``)."""

RefreshHook = Callable[[ClientContext], Awaitable[RefreshReply]]
"""``(client) -> reply`` when a connection the app authenticated (``Hub(authenticate=...)``,
no JWT) reaches its ``expire_at``: the server refreshes it itself, and the client is told it
does not expire, so it never needs a token."""


@dataclass(slots=True)
class Hooks:
    """The app's say in what clients may do; when a hook is set, it decides instead of config."""

    subscribe: SubscribeHook | None = None
    publish: PublishHook | None = None
    message: MessageHandler | None = None
    connect: ConnectHook | None = None
    disconnect: DisconnectHook | None = None
    unsubscribe: UnsubscribeHook | None = None
    refresh: RefreshHook | None = None
    rpc: dict[str, RPCHandler] = field(default_factory=dict)
    publication_models: dict[str, type[Any]] = field(default_factory=dict)
    """Namespace name ("" for none) -> pydantic model that client publications must validate."""
