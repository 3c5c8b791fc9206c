"""The server API's request and result bodies, in Centrifugo v5/v6's JSON field names.

Requests are decoded with msgspec. As in Centrifugo (whose Go structs have no required fields),
every field has a default: a body that is not JSON, or holds a value of the wrong type, fails to
decode (HTTP 400); a body that decodes but lacks what the method needs (an empty ``channel``)
gets a ``bad request`` error (code 107) in a normal HTTP 200 reply. Unknown fields are ignored,
so newer clients' options never break a call.

A field whose target roomcast cannot follow (``session``: roomcast has no unidirectional or
emulated transports, whose connections sessions name) is refused as not available instead of
being ignored; ``override`` refuses an option it does not know (HTTP 400 naming it).

The results of ``history``, ``presence`` and ``presence_stats`` are the client protocol's own
bodies (``roomcast.protocol``): the server API and a client's commands answer alike.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from roomcast import protocol
from roomcast.protocol import ErrorCode

__all__ = [
    "ApiError",
    "BatchRequest",
    "BoolValue",
    "BroadcastRequest",
    "BroadcastResult",
    "ChannelInfo",
    "ChannelRequest",
    "ChannelsRequest",
    "ChannelsResult",
    "DisconnectRequest",
    "DisconnectSpec",
    "EmptyRequest",
    "EmptyResult",
    "HistoryRequest",
    "HistoryResult",
    "InfoResult",
    "PresenceResult",
    "PresenceStatsResult",
    "PublishRequest",
    "PublishResponse",
    "PublishResult",
    "RefreshRequest",
    "StreamPositionSchema",
    "SubscribeOverrideSchema",
    "SubscribeRequest",
    "UnsubscribeRequest",
]


class ApiError(msgspec.Struct, frozen=True):
    """An error in a reply: ``{"code": 107, "message": "bad request: ..."}``.

    Codes are Centrifugo's server API codes (100 internal, 102 unknown channel, 104 not found,
    107 bad request, 108 not available), which are the protocol's :class:`ErrorCode` values.
    """

    code: int
    message: str

    @classmethod
    def of(cls, code: ErrorCode, detail: str = "") -> ApiError:
        """The standard error for ``code``; ``detail`` is appended to its standard message."""
        return cls(int(code), f"{code.message}: {detail}" if detail else code.message)


# --- requests -----------------------------------------------------------------------------------


class EmptyRequest(msgspec.Struct, frozen=True):
    """A request without fields (``info``)."""


_Version = Annotated[int, msgspec.Meta(ge=0)]


class PublishRequest(msgspec.Struct, frozen=True):
    """``publish``: put ``data`` (any JSON), or ``b64data`` (any bytes), into ``channel``.

    ``tags`` travel with the publication. A publication with an ``idempotency_key`` is made
    once per channel and key within five minutes, whichever node is asked; a repeat gets the
    first one's result (``suppressed``, ``suppress_reason`` "idempotency"). ``skip_history``:
    delivered, not kept in history. ``version`` (with ``version_epoch``): dropped
    (``suppress_reason`` "version") unless greater than the channel's last version; needs
    history. ``b64data`` that decodes to JSON is published as that JSON; other bytes go as a
    binary publication: Protobuf clients get the bytes, JSON clients their base64 string
    tagged ``roomcast.binary``. ``delta``: the publication may go as a fossil delta, which is
    what every publication of a namespace with ``delta_publish`` does; refused (108) in
    other namespaces, whose publications always go whole.
    """

    channel: str = ""
    data: msgspec.Raw = msgspec.Raw()
    b64data: str = ""
    tags: dict[str, str] | None = None
    skip_history: bool = False
    idempotency_key: str = ""
    version: _Version = 0
    version_epoch: str = ""
    delta: bool = False


class BroadcastRequest(msgspec.Struct, frozen=True):
    """``broadcast``: the same ``data`` into each of ``channels``; fields as in publish (the
    idempotency key and the version count per channel)."""

    channels: list[str] = []
    data: msgspec.Raw = msgspec.Raw()
    b64data: str = ""
    tags: dict[str, str] | None = None
    skip_history: bool = False
    idempotency_key: str = ""
    version: _Version = 0
    version_epoch: str = ""
    delta: bool = False


class StreamPositionSchema(msgspec.Struct, frozen=True):
    """``{"offset": N, "epoch": "..."}``: a place in a channel's history."""

    offset: int = 0
    epoch: str = ""


class BoolValue(msgspec.Struct, frozen=True):
    """``{"value": true}``: an explicit boolean (Centrifugo's ``BoolValue``)."""

    value: bool = False


class SubscribeOverrideSchema(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``override`` of ``subscribe``: namespace options this subscription uses instead, each
    ``{"value": bool}`` (Centrifugo's ``SubscribeOptionOverride``). An option not listed here
    fails the request (HTTP 400) rather than being ignored."""

    presence: BoolValue | None = None
    join_leave: BoolValue | None = None
    force_push_join_leave: BoolValue | None = None
    force_positioning: BoolValue | None = None
    force_recovery: BoolValue | None = None


class SubscribeRequest(msgspec.Struct, frozen=True):
    """``subscribe``: subscribe ``user``'s connections (or only ``client``) to ``channel``, on
    every node.

    ``user`` "" means anonymous connections; with ``all_users`` too, every connection.
    ``info`` (JSON, or ``b64info`` decoding to JSON) is the subscriber's channel info;
    ``data`` (or ``b64data``) travels in the subscribe push; ``expire_at`` (Unix seconds)
    ends the subscription, closing the connection with 3006, unless a later subscribe moves
    it; ``recover_since`` replays what followed that position; ``override`` replaces
    namespace options. ``session`` is refused (see the module doc).
    """

    channel: str = ""
    user: str = ""
    client: str = ""
    session: str = ""
    all_users: bool = False
    info: msgspec.Raw = msgspec.Raw()
    b64info: str = ""
    data: msgspec.Raw = msgspec.Raw()
    b64data: str = ""
    expire_at: int = 0
    recover_since: StreamPositionSchema | None = None
    override: SubscribeOverrideSchema | None = None


class UnsubscribeRequest(msgspec.Struct, frozen=True):
    """``unsubscribe``: end ``user``'s (or only ``client``'s) subscriptions to ``channel``.

    ``session`` and ``all_users`` as in :class:`SubscribeRequest`.
    """

    channel: str = ""
    user: str = ""
    client: str = ""
    session: str = ""
    all_users: bool = False


class DisconnectSpec(msgspec.Struct, frozen=True):
    """The close code (3000-4999) and reason (at most 123 UTF-8 bytes) a disconnect uses.

    Code 0 (Centrifugo's zero value) means the default: 3503 "force disconnect".
    """

    code: int = 0
    reason: str = ""


class DisconnectRequest(msgspec.Struct, frozen=True):
    """``disconnect``: close ``user``'s connections, or only ``client``, except ``whitelist``.

    ``session`` and ``all_users`` as in :class:`SubscribeRequest`.
    """

    user: str = ""
    client: str = ""
    whitelist: list[str] = []
    disconnect: DisconnectSpec | None = None
    session: str = ""
    all_users: bool = False


class RefreshRequest(msgspec.Struct, frozen=True):
    """``refresh``: refresh ``user``'s connections (or only ``client``), on every node: with
    ``expired``, close them as expired (3005); otherwise make them expire at ``expire_at``
    (Unix seconds; 0 for never) and, with ``info`` (JSON), replace their connection info.

    ``session`` and ``all_users`` as in :class:`SubscribeRequest`.
    """

    user: str = ""
    client: str = ""
    session: str = ""
    all_users: bool = False
    expired: bool = False
    expire_at: int = 0
    info: msgspec.Raw = msgspec.Raw()


class ChannelRequest(msgspec.Struct, frozen=True):
    """``presence``, ``presence_stats``, ``history`` and ``history_remove``: one channel."""

    channel: str = ""


class HistoryRequest(msgspec.Struct, frozen=True):
    """``history``: publications after ``since`` (all kept if absent), at most ``limit``
    (0, the default, gives only the stream's position), newest first with ``reverse``."""

    channel: str = ""
    limit: int = 0
    since: StreamPositionSchema | None = None
    reverse: bool = False


class ChannelsRequest(msgspec.Struct, frozen=True):
    """``channels``: active channels, filtered by a glob ``pattern`` (``*``, ``?``, ``[a-z]``,
    ``{a,b}``, ``\\`` escapes) when one is given."""

    pattern: str = ""


class BatchRequest(msgspec.Struct, frozen=True):
    """``batch``: ``commands``, each ``{"<method>": {...request...}}``, run in order or, with
    ``parallel``, concurrently. A command's body is decoded when it runs, so one bad command
    gets its own error reply and the others still run."""

    commands: list[dict[str, msgspec.Raw] | None] = []
    parallel: bool = False


# --- results ------------------------------------------------------------------------------------


class EmptyResult(msgspec.Struct, frozen=True):
    """``{}``: the result of subscribe, unsubscribe, disconnect and refresh."""


class PublishResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """``publish``'s result: the publication's place in history, when the channel keeps it.

    ``suppressed`` (with ``suppress_reason``, Centrifugo's names) when nothing was published:
    "idempotency" (offset and epoch are the first publication's) or "version" (they are the
    stream's top).
    """

    offset: int = 0
    epoch: str = ""
    suppressed: bool = False
    suppress_reason: str = ""


class PublishResponse(msgspec.Struct, frozen=True, omit_defaults=True):
    """One channel's outcome inside a broadcast: ``result`` or ``error``."""

    result: PublishResult | None = None
    error: ApiError | None = None


class BroadcastResult(msgspec.Struct, frozen=True):
    """``broadcast``'s result: one response per requested channel, in request order."""

    responses: list[PublishResponse]


class ChannelInfo(msgspec.Struct, frozen=True):
    """A channel in ``channels``' result."""

    num_clients: int


class ChannelsResult(msgspec.Struct, frozen=True):
    """``channels``' result: channel name to its subscriber count, summed over the nodes."""

    channels: dict[str, ChannelInfo]


class InfoResult(msgspec.Struct, frozen=True):
    """``info``'s result: one entry per live node (uid, name, version, num_clients, ...)."""

    nodes: list[dict[str, Any]]


HistoryResult = protocol.HistoryResult
"""``history``'s result: ``publications`` and the stream's current ``offset`` and ``epoch``."""

PresenceResult = protocol.PresenceResult
"""``presence``'s result: client ID to client."""

PresenceStatsResult = protocol.PresenceStatsResult
"""``presence_stats``' result: ``num_clients`` and ``num_users``."""
