"""What the nodes of one installation tell each other over the broker's control channel.

Every message is an :class:`Envelope` in msgpack: the protocol version, the uid of the node
that sent it, and the body, one of the structs below tagged by kind. A body is decoded only
when its version is :data:`PROTOCOL_VERSION`, and its fields are maps keyed by name, so a newer
node may add fields (an older one ignores them) and a message of another version or an
unknown kind is dropped, never misread: nodes of two releases can share an engine during a
rolling upgrade.

Kinds:

- :class:`NodeInfo` (``node``): a node announces itself and its counts, every few seconds.
- :class:`Leaving` (``left``): a node stops, so the others forget it at once.
- the commands (:data:`Command`): ``disconnect``, ``subscribe``, ``unsubscribe``, ``refresh``
  for the connections :class:`Target` names, applied by every node to its own connections.
- :class:`SurveyRequest` (``survey``) and :class:`SurveyReply` (``reply``): a question every
  live node answers (``channels``), the replies addressed to the node that asked.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import msgspec

__all__ = [
    "PROTOCOL_VERSION",
    "Body",
    "Command",
    "DisconnectCommand",
    "Envelope",
    "Leaving",
    "NodeInfo",
    "Position",
    "RefreshCommand",
    "SubscribeCommand",
    "SubscribeOverride",
    "SurveyReply",
    "SurveyRequest",
    "Target",
    "UnsubscribeCommand",
    "decode",
    "encode",
]

PROTOCOL_VERSION: Final = 1
"""The version of the bodies this release writes and reads."""


class Target(msgspec.Struct, frozen=True, omit_defaults=True):
    """Whose connections a command acts on: ``user``'s ("" for anonymous ones), only the one
    with client ID ``client`` when it is given; with ``all_users`` and an empty ``user``,
    every connection (Centrifugo's ``all_users``; it changes nothing when ``user`` is set)."""

    user: str = ""
    client: str = ""
    all_users: bool = False


class Position(msgspec.Struct, frozen=True):
    """A place in a channel's stream: offset within epoch."""

    offset: int
    epoch: str


class NodeInfo(msgspec.Struct, frozen=True, tag="node"):
    """A node's announcement: who it is and what it holds (the server API's ``info`` entry)."""

    uid: str
    """Unique per process start."""
    name: str
    """Human-readable (``node.name``)."""
    version: str
    uptime: int
    """Seconds since the node started."""
    num_clients: int
    num_users: int
    num_subs: int
    num_channels: int


class Leaving(msgspec.Struct, frozen=True, tag="left"):
    """The sending node stops: forget it now rather than after its announcements' TTL."""


class DisconnectCommand(msgspec.Struct, frozen=True, tag="disconnect"):
    """Close the target's connections, except the client IDs in ``whitelist``."""

    target: Target
    code: int
    reason: str
    whitelist: list[str] = []


class SubscribeOverride(msgspec.Struct, frozen=True, omit_defaults=True):
    """Channel options one server-side subscription uses instead of its namespace's
    (Centrifugo's ``SubscribeOptionOverride``); None keeps the namespace's value."""

    presence: bool | None = None
    join_leave: bool | None = None
    force_push_join_leave: bool | None = None
    force_positioning: bool | None = None
    force_recovery: bool | None = None


class SubscribeCommand(msgspec.Struct, frozen=True, tag="subscribe", omit_defaults=True):
    """Subscribe the target's connections to ``channel`` on the server's initiative.

    ``chan_info`` (JSON) appears in presence and join/leave; ``data`` (JSON) is sent in the
    subscribe push; ``expire_at`` (Unix seconds, 0 for never) ends it unless refreshed;
    ``recover_since`` replays what followed that position; ``override`` changes options.
    """

    target: Target
    channel: str
    chan_info: bytes = b""
    data: bytes = b""
    expire_at: int = 0
    recover_since: Position | None = None
    override: SubscribeOverride | None = None


class UnsubscribeCommand(msgspec.Struct, frozen=True, tag="unsubscribe"):
    """End the target's subscriptions to ``channel``."""

    target: Target
    channel: str


class RefreshCommand(msgspec.Struct, frozen=True, tag="refresh", omit_defaults=True):
    """Refresh the target's connections: close them as expired (``expired``), or move their
    expiry to ``expire_at`` (Unix seconds; 0 keeps it), replacing their ``conn_info`` when
    it is not empty."""

    target: Target
    expired: bool = False
    expire_at: int = 0
    conn_info: bytes = b""


class SurveyRequest(msgspec.Struct, frozen=True, tag="survey"):
    """Ask every live node about ``subject``; each answers with a :class:`SurveyReply`."""

    id: str
    subject: str
    body: bytes = b""


class SurveyReply(msgspec.Struct, frozen=True, tag="reply"):
    """A node's answer to the survey ``id``, for the node ``to`` (the one that asked)."""

    id: str
    to: str
    body: bytes


Command: TypeAlias = DisconnectCommand | SubscribeCommand | UnsubscribeCommand | RefreshCommand
"""What every node applies to its own connections."""

Body: TypeAlias = NodeInfo | Leaving | Command | SurveyRequest | SurveyReply
"""Every kind of message."""


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """One control message: who sent it, and its body, decoded only for this version."""

    version: int
    origin: str
    body: msgspec.Raw


_encoder: Final = msgspec.msgpack.Encoder()
_envelope_decoder: Final = msgspec.msgpack.Decoder(Envelope)
_body_decoder: Final = msgspec.msgpack.Decoder(Body)


def encode(origin: str, body: Body) -> bytes:
    """The control message of ``body`` sent by the node ``origin``."""
    return _encoder.encode(Envelope(PROTOCOL_VERSION, origin, msgspec.Raw(_encoder.encode(body))))


def decode(payload: bytes) -> tuple[str, Body] | None:
    """(origin, body) of a control message; None for one of another protocol version.

    Raises:
        msgspec.DecodeError: ``payload`` is not a control message, or its body is of a kind
            (or shape) this version does not know.
    """
    envelope = _envelope_decoder.decode(payload)
    if envelope.version != PROTOCOL_VERSION:
        return None
    return envelope.origin, _body_decoder.decode(envelope.body)
