"""The JSON messages of the Centrifuge client protocol v2, as typed msgspec structs.

A client sends ``Command`` objects; the server sends ``Reply`` objects (answers carrying the
command's ``id``) and pushes, which travel as ``{"push": Push}``. Field names are the wire
names that the official SDKs read and write.

Conventions that hold for every struct here:

* Fields left at their default are not written (``omit_defaults``), as Centrifugo does. Fields
  without a default are always written because the SDKs read them unconditionally.
* ``data``, ``info`` payloads, ``conn_info`` and ``chan_info`` are ``msgspec.Raw``: the JSON
  text as it arrived, never decoded or re-encoded. An absent payload is the empty
  ``msgspec.Raw()`` and is not written. A non-empty ``Raw`` given to an encoder must hold one
  valid JSON value; nothing checks this on the way out.
* Integer bounds follow ``client.proto``; unsigned 64-bit fields (offsets) accept at most
  2**63 - 1. A decoded value outside its bounds makes the whole frame a bad request.
* Every field of ``client.proto``'s commands is declared, served or not, and no other: a
  command carrying a field the protocol does not have is refused, naming it (see
  :func:`roomcast.protocol.codec.decode_frame`).
"""

from __future__ import annotations

from enum import IntFlag, StrEnum
from typing import Annotated, Final, TypeAlias, cast

import msgspec

from .codes import Disconnect, Error

__all__ = [
    "ClientInfo",
    "Command",
    "ConnectRequest",
    "ConnectResult",
    "FilterNode",
    "HistoryRequest",
    "HistoryResult",
    "Join",
    "Leave",
    "Message",
    "Method",
    "PingRequest",
    "PresenceRequest",
    "PresenceResult",
    "PresenceStatsRequest",
    "PresenceStatsResult",
    "Publication",
    "PublishRequest",
    "PublishResult",
    "Push",
    "RPCRequest",
    "RPCResult",
    "RefreshPush",
    "RefreshRequest",
    "RefreshResult",
    "Reply",
    "Request",
    "SendRequest",
    "StreamPosition",
    "SubRefreshRequest",
    "SubRefreshResult",
    "SubscribeFlag",
    "SubscribePush",
    "SubscribeRequest",
    "SubscribeResult",
    "UnsubscribePush",
    "UnsubscribeRequest",
    "UnsubscribeResult",
    "raw",
]

_UInt32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF_FFFF)]
_Int32 = Annotated[int, msgspec.Meta(ge=-0x8000_0000, le=0x7FFF_FFFF)]
_Int64 = Annotated[int, msgspec.Meta(ge=-0x8000_0000_0000_0000, le=0x7FFF_FFFF_FFFF_FFFF)]
_Offset = Annotated[int, msgspec.Meta(ge=0, le=0x7FFF_FFFF_FFFF_FFFF)]
_ChannelName = Annotated[str, msgspec.Meta(min_length=1)]
"""A channel a command acts on: required and non-empty, else the frame is a bad request."""

_EMPTY = msgspec.Raw()


def raw(data: bytes) -> msgspec.Raw:
    """``data`` (one JSON value, or empty for none) as a payload field's value.

    Always build payload fields with this: msgspec leaves a field out only when it *is* the
    default instance, and would write any other empty ``Raw`` as nothing, which is not JSON.
    """
    return msgspec.Raw(data) if data else _EMPTY


class _Wire(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """Base of every message: fields left at their defaults are not written, and a field
    ``client.proto`` does not have makes decoding fail (the codec names it to the client)."""


# --- values shared by commands, replies and pushes --------------------------------------------


class StreamPosition(_Wire):
    """A place in a channel's history stream: ``offset`` within the stream's ``epoch``."""

    offset: _Offset = 0
    epoch: str = ""


class ClientInfo(_Wire):
    """Who is behind a connection; ``user`` and ``client`` are always written, maybe empty."""

    user: str
    client: str
    conn_info: msgspec.Raw = _EMPTY
    chan_info: msgspec.Raw = _EMPTY


class Publication(_Wire):
    """One message in a channel; ``data`` is the JSON payload exactly as published.

    ``offset`` is its position in the channel's stream (0 when the channel keeps no history),
    ``time`` a Unix time in milliseconds, ``delta`` says ``data`` is a fossil delta against
    the previous publication (the client asked for ``delta: "fossil"``).
    """

    data: msgspec.Raw = _EMPTY
    info: ClientInfo | None = None
    offset: _Offset = 0
    tags: dict[str, str] = {}
    delta: bool = False
    time: _Int64 = 0


# --- commands (client to server) ------------------------------------------------------------


class FilterNode(_Wire):
    """A subscription's tags filter (``tf``): one node of the SDKs' filter tree.

    ``op`` empty makes a leaf comparing the publication's tag ``key`` by ``cmp`` (``eq``,
    ``neq``, ``in``, ``nin``, ``ex``, ``nex``, ``sw``, ``ew``, ``ct``, ``lt``, ``lte``, ``gt``,
    ``gte``) with ``val``, or with ``vals`` for ``in`` / ``nin``; ``and``, ``or`` and ``not``
    combine the ``nodes`` below. Decoding checks only the types; what makes a tree valid is
    the session's to judge (:mod:`roomcast.session.tags_filter`).
    """

    op: str = ""
    key: str = ""
    cmp: str = ""
    val: str = ""
    vals: list[str] = []
    nodes: list[FilterNode] = []


class SubscribeFlag(IntFlag):
    """The bits of ``SubscribeRequest.flag``, as the SDKs set them."""

    CHANNEL_COMPACTION = 1
    """The client can read pushes that carry a numeric channel id instead of the name; an
    offer the server takes by putting ``id`` in its reply (roomcast never does)."""
    REJECT_UNRECOVERED = 2
    """A recovery that cannot be made must fail with error 112 instead of a reply with
    ``recovered`` false (the SDKs set it when the app reloads its own state on 112)."""


class SubscribeRequest(_Wire):
    """Subscribe to ``channel``; with ``recover``, resume after ``offset`` in ``epoch``.

    ``tf`` filters publications by their tags; ``flag`` is a bitmask of the
    :class:`SubscribeFlag` features the client offers or asks for. ``type``, ``phase``,
    ``cursor``, ``limit`` and ``asc`` belong to map and shared-poll subscriptions, which
    roomcast does not serve; they are decoded so that a client using them is told so instead
    of being ignored (:mod:`roomcast.protocol.unserved`).

    Also the value type of ``ConnectRequest.subs`` (server-side subscriptions to recover),
    where the map key names the channel; so ``channel`` is optional here, and the codec
    rejects a ``subscribe`` command that leaves it empty.
    """

    channel: str = ""
    token: str = ""
    recover: bool = False
    epoch: str = ""
    offset: _Offset = 0
    data: msgspec.Raw = _EMPTY
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    delta: str = ""
    tf: FilterNode | None = None
    flag: _Int64 = 0
    type: _Int32 = 0
    phase: _Int32 = 0
    cursor: str = ""
    limit: _Int32 = 0
    asc: bool = False


class ConnectRequest(_Wire):
    """The first command of every connection: credentials and what the client is.

    ``flag`` is a bitmask of connection features the client supports and ``dictionary``
    (``dict`` on the wire) the id of a compression dictionary it holds; the reply says which
    the server enabled (roomcast enables none, so its reply carries neither). ``profile`` is
    the client's own, untrusted, name for the kind of view it is.
    """

    token: str = ""
    data: msgspec.Raw = _EMPTY
    subs: dict[str, SubscribeRequest] = {}
    name: str = ""
    version: str = ""
    headers: dict[str, str] = {}
    flag: _Int64 = 0
    profile: str = ""
    dictionary: str = msgspec.field(default="", name="dict")


class UnsubscribeRequest(_Wire):
    """Leave ``channel``."""

    channel: _ChannelName


class PublishRequest(_Wire):
    """Publish ``data`` into ``channel``.

    ``type`` 1, ``key`` and ``removed`` publish into or remove from a map subscription's
    state, which roomcast does not serve; decoded so that such a publish is refused by name.
    """

    channel: _ChannelName
    data: msgspec.Raw = _EMPTY
    type: _Int32 = 0
    key: str = ""
    removed: bool = False


class PresenceRequest(_Wire):
    """Ask who is in ``channel``."""

    channel: _ChannelName


class PresenceStatsRequest(_Wire):
    """Ask how many clients and distinct users are in ``channel``."""

    channel: _ChannelName


class HistoryRequest(_Wire):
    """Read ``channel``'s stream: up to ``limit`` publications after ``since``.

    ``limit`` 0 asks only for the current stream position; a negative one asks for as many as
    the server allows. ``reverse`` reads newest first.
    """

    channel: _ChannelName
    limit: _Int32 = 0
    since: StreamPosition | None = None
    reverse: bool = False


class SendRequest(_Wire):
    """An asynchronous message to the server; it is never answered."""

    data: msgspec.Raw = _EMPTY


class RPCRequest(_Wire):
    """Call the server's ``method`` with ``data``."""

    data: msgspec.Raw = _EMPTY
    method: str = ""


class RefreshRequest(_Wire):
    """Replace the connection token before it expires."""

    token: str = ""


class SubRefreshRequest(_Wire):
    """Replace the subscription token of ``channel`` before it expires.

    ``type`` 1 / 2 with ``track`` / ``untrack`` are the shared-poll subscriptions' key
    tracking, which roomcast does not serve; decoded so that such a command is refused by name.
    """

    channel: _ChannelName
    token: str = ""
    type: _Int32 = 0
    track: list[msgspec.Raw] = []
    untrack: list[str] = []


class PingRequest(_Wire):
    """A ``ping`` command. Protocol v2 pings are the server's empty replies, so this is
    answered with error 108 (not available), as Centrifuge answers it."""


Request: TypeAlias = (
    ConnectRequest
    | SubscribeRequest
    | UnsubscribeRequest
    | PublishRequest
    | PresenceRequest
    | PresenceStatsRequest
    | HistoryRequest
    | RPCRequest
    | SendRequest
    | RefreshRequest
    | SubRefreshRequest
    | PingRequest
)


class Method(StrEnum):
    """The request kinds a ``Command`` can carry; each value is its JSON field name."""

    CONNECT = "connect"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    PUBLISH = "publish"
    PRESENCE = "presence"
    PRESENCE_STATS = "presence_stats"
    HISTORY = "history"
    RPC = "rpc"
    SEND = "send"
    REFRESH = "refresh"
    SUB_REFRESH = "sub_refresh"
    PING = "ping"


# Iterating an Enum class is slow; this tuple keeps Command.method cheap on the hot path.
_METHODS: Final = tuple((method, method.value) for method in Method)


class Command(_Wire):
    """One client command: an ``id`` and at most one request field.

    ``id`` (above 0) is echoed in the reply. ``send`` is the only request sent without an id,
    and the empty command ``{}`` is the client's pong. Should a client set several request
    fields, the first in :class:`Method` order wins, as in Centrifuge. A command naming only
    an unknown method decodes (through the codec) with ``method`` None.
    """

    id: _UInt32 = 0
    connect: ConnectRequest | None = None
    subscribe: SubscribeRequest | None = None
    unsubscribe: UnsubscribeRequest | None = None
    publish: PublishRequest | None = None
    presence: PresenceRequest | None = None
    presence_stats: PresenceStatsRequest | None = None
    history: HistoryRequest | None = None
    rpc: RPCRequest | None = None
    send: SendRequest | None = None
    refresh: RefreshRequest | None = None
    sub_refresh: SubRefreshRequest | None = None
    ping: PingRequest | None = None

    @property
    def method(self) -> Method | None:
        """The request kind this command carries, or None if it names no known method."""
        for method, field in _METHODS:
            if getattr(self, field) is not None:
                return method
        return None

    @property
    def request(self) -> Request | None:
        """The request :attr:`method` names, or None."""
        for _, field in _METHODS:
            request = getattr(self, field)
            if request is not None:
                return cast(Request, request)
        return None

    @property
    def is_pong(self) -> bool:
        """Whether this is the client's answer to a server ping: no id and no method."""
        return self.id == 0 and self.method is None


# --- replies (server to client, answering a command) -----------------------------------------


class SubscribeResult(_Wire):
    """A successful subscribe: stream position, recovery outcome, missed publications."""

    expires: bool = False
    ttl: _UInt32 = 0
    recoverable: bool = False
    epoch: str = ""
    publications: list[Publication] = []
    recovered: bool = False
    offset: _Offset = 0
    positioned: bool = False
    data: msgspec.Raw = _EMPTY
    was_recovering: bool = False
    delta: bool = False


class ConnectResult(_Wire):
    """A successful connect.

    ``ping`` is the server's ping interval in seconds (0: no pings) and ``pong`` whether the
    client must answer each ping with ``{}``. ``ttl`` is seconds until the connection expires
    when ``expires`` is set; ``subs`` holds server-side subscriptions by channel.
    """

    client: str = ""
    version: str = ""
    expires: bool = False
    ttl: _UInt32 = 0
    data: msgspec.Raw = _EMPTY
    subs: dict[str, SubscribeResult] = {}
    ping: _UInt32 = 0
    pong: bool = False
    session: str = ""
    node: str = ""
    time: _Int64 = 0


class UnsubscribeResult(_Wire):
    """A successful unsubscribe; written as ``{}``."""


class PublishResult(_Wire):
    """A successful publish; written as ``{}``."""


class PresenceResult(_Wire):
    """Who is in a channel, by client id; always written, even when empty."""

    presence: dict[str, ClientInfo]


class PresenceStatsResult(_Wire):
    """How many connections and distinct users are in a channel; both always written."""

    num_clients: _UInt32
    num_users: _UInt32


class HistoryResult(_Wire):
    """Publications read from a stream, and the stream's current position; always written."""

    publications: list[Publication]
    epoch: str
    offset: _Offset


class RPCResult(_Wire):
    """What the RPC handler returned."""

    data: msgspec.Raw = _EMPTY


class RefreshResult(_Wire):
    """A refreshed connection: ``ttl`` seconds until it expires if ``expires``."""

    client: str = ""
    version: str = ""
    expires: bool = False
    ttl: _UInt32 = 0


class SubRefreshResult(_Wire):
    """A refreshed subscription: ``ttl`` seconds until it expires if ``expires``."""

    expires: bool = False
    ttl: _UInt32 = 0


class Reply(_Wire):
    """The answer to one command: its ``id`` and either an ``error`` or one result field."""

    id: _UInt32 = 0
    error: Error | None = None
    connect: ConnectResult | None = None
    subscribe: SubscribeResult | None = None
    unsubscribe: UnsubscribeResult | None = None
    publish: PublishResult | None = None
    presence: PresenceResult | None = None
    presence_stats: PresenceStatsResult | None = None
    history: HistoryResult | None = None
    rpc: RPCResult | None = None
    refresh: RefreshResult | None = None
    sub_refresh: SubRefreshResult | None = None


# --- pushes (server to client, unsolicited) --------------------------------------------------


class Join(_Wire):
    """A client joined the channel (sent to subscribers that asked for join/leave)."""

    info: ClientInfo


class Leave(_Wire):
    """A client left the channel."""

    info: ClientInfo


class UnsubscribePush(_Wire):
    """The server ended the subscription; see ``UnsubscribeCode`` for the codes.

    Both fields are always written: the Python SDK reads them unconditionally.
    """

    code: _UInt32
    reason: str


class SubscribePush(_Wire):
    """The server subscribed the connection to the push's channel (server-side subscription)."""

    recoverable: bool = False
    epoch: str = ""
    offset: _Offset = 0
    positioned: bool = False
    data: msgspec.Raw = _EMPTY


class Message(_Wire):
    """A message from the server to this connection alone, outside any channel."""

    data: msgspec.Raw = _EMPTY


class RefreshPush(_Wire):
    """The server refreshed the connection: ``ttl`` seconds until it expires if ``expires``."""

    expires: bool = False
    ttl: _UInt32 = 0


class Push(_Wire):
    """An unsolicited server message about ``channel`` (empty for connection-wide pushes).

    Exactly one of the other fields is set. ``connect`` (sent on unidirectional transports)
    carries the same fields as a connect reply's result. On the wire a push is wrapped as
    ``{"push": {...}}``; :func:`roomcast.protocol.codec.encode_push` does that.
    """

    channel: str = ""
    pub: Publication | None = None
    join: Join | None = None
    leave: Leave | None = None
    unsubscribe: UnsubscribePush | None = None
    message: Message | None = None
    subscribe: SubscribePush | None = None
    connect: ConnectResult | None = None
    disconnect: Disconnect | None = None
    refresh: RefreshPush | None = None
