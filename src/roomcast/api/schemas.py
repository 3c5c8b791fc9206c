"""The server API's request and result bodies, in Centrifugo v5/v6's JSON field names.

Requests are decoded with msgspec. As in Centrifugo (whose Go structs have no required fields),
every field has a default: a body that is not JSON, or holds a value of the wrong type, fails to
decode (HTTP 400); a body that decodes but lacks what the method needs (an empty ``channel``)
gets a ``bad request`` error (code 107) in a normal HTTP 200 reply. Unknown fields are ignored,
so newer clients' options never break a call.

A few of Centrifugo's fields are accepted for compatibility but not applied yet, each noted on
its class: ``skip_history`` of publish and broadcast (a publication into a channel that keeps
history is always kept), and subscribe's ``info``, ``data``, ``expire_at``, ``recover_since``
and ``override`` (a subscription the server makes carries no channel info or data, does not
expire and does not recover). Fields whose target roomcast cannot follow (``session``,
``all_users``) are refused as not available instead of being ignored.

The results of ``history``, ``presence`` and ``presence_stats`` are the client protocol's own
bodies (``roomcast.protocol``): the server API and a client's commands answer alike.
"""

from __future__ import annotations

from typing import Any

import msgspec

from roomcast import protocol
from roomcast.protocol import ErrorCode

__all__ = [
    "ApiError",
    "BatchRequest",
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
    "StreamPositionSchema",
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


class PublishRequest(msgspec.Struct, frozen=True):
    """``publish``: put ``data`` (any JSON), or ``b64data`` decoding to JSON, into ``channel``.

    ``tags`` travel with the publication. A publication with an ``idempotency_key`` is made
    once per channel and key within five minutes; a repeat gets the first one's result.
    ``skip_history`` is accepted and not applied yet.
    """

    channel: str = ""
    data: msgspec.Raw = msgspec.Raw()
    b64data: str = ""
    tags: dict[str, str] | None = None
    skip_history: bool = False
    idempotency_key: str = ""


class BroadcastRequest(msgspec.Struct, frozen=True):
    """``broadcast``: the same ``data`` into each of ``channels``; fields as in publish."""

    channels: list[str] = []
    data: msgspec.Raw = msgspec.Raw()
    b64data: str = ""
    tags: dict[str, str] | None = None
    skip_history: bool = False
    idempotency_key: str = ""


class SubscribeRequest(msgspec.Struct, frozen=True):
    """``subscribe``: subscribe ``user``'s connections (or only ``client``) to ``channel``.

    ``user`` "" means anonymous connections. ``info``, ``data``, ``expire_at``,
    ``recover_since`` and ``override`` are accepted (read as unknown fields: ignored) and not
    applied yet. ``session`` and
    ``all_users`` widen or narrow the target in ways roomcast cannot follow yet, so a request
    using them is refused as not available rather than acting on the wrong connections.
    """

    channel: str = ""
    user: str = ""
    client: str = ""
    session: str = ""
    all_users: bool = False


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


class ChannelRequest(msgspec.Struct, frozen=True):
    """``presence``, ``presence_stats``, ``history`` and ``history_remove``: one channel."""

    channel: str = ""


class StreamPositionSchema(msgspec.Struct, frozen=True):
    """``{"offset": N, "epoch": "..."}``: a place in a channel's history."""

    offset: int = 0
    epoch: str = ""


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
    """``{}``: the result of subscribe, unsubscribe and disconnect."""


class PublishResult(msgspec.Struct, frozen=True, omit_defaults=True):
    """``publish``'s result: the publication's place in history, when the channel keeps it."""

    offset: int = 0
    epoch: str = ""


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
    """``channels``' result: channel name to its subscriber count."""

    channels: dict[str, ChannelInfo]


class InfoResult(msgspec.Struct, frozen=True):
    """``info``'s result: one entry per node (uid, name, version, num_clients, ...)."""

    nodes: list[dict[str, Any]]


HistoryResult = protocol.HistoryResult
"""``history``'s result: ``publications`` and the stream's current ``offset`` and ``epoch``."""

PresenceResult = protocol.PresenceResult
"""``presence``'s result: client ID to client."""

PresenceStatsResult = protocol.PresenceStatsResult
"""``presence_stats``' result: ``num_clients`` and ``num_users``."""
