"""What travels through a channel: a Publication and the ClientInfo of its publisher."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["ChannelEvent", "ClientInfo", "Join", "Leave", "Publication", "StreamPosition"]


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who a connection is: user ID, client (connection) ID and opaque JSON infos."""

    user: str
    client: str
    conn_info: bytes = b""
    """JSON bytes from the connection token's ``info`` claim, or empty."""
    chan_info: bytes = b""
    """JSON bytes from the subscription token's ``info`` claim, or empty."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One message published into a channel.

    ``data`` is the payload as JSON bytes, kept as bytes end to end so that it is never decoded
    and re-encoded on the way to subscribers. ``offset`` and ``epoch`` place it in the channel's
    history stream (zero and empty when the channel keeps no history). ``published_at`` is
    the wall-clock time (seconds since the epoch) the node that published it handed it to the
    broker, 0 when unknown; it travels between nodes so each can tell its pub/sub lag, and is
    no part of what the publication is (it is left out of comparisons).
    """

    data: bytes
    offset: int = 0
    epoch: str = ""
    info: ClientInfo | None = None
    tags: dict[str, str] = field(default_factory=dict)
    published_at: float = field(default=0.0, compare=False)

    def placed(self, offset: int, epoch: str) -> Publication:
        """This publication as a history store added it: at ``offset`` in ``epoch``, with
        its own copy of the tags, so what a store keeps shares nothing with its caller."""
        return replace(self, offset=offset, epoch=epoch, tags=dict(self.tags))


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in a channel's history stream: the offset of a publication within an epoch.

    Offsets start at 1 and grow by exactly one per publication; the epoch names one unbroken
    run of the stream, and changes whenever the store cannot vouch for continuity (the stream
    expired, the store was wiped, the server stopped without flushing).
    """

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Join:
    """A client subscribed to a channel (delivered to subscribers that asked for join/leave)."""

    info: ClientInfo


@dataclass(frozen=True, slots=True)
class Leave:
    """A client left a channel."""

    info: ClientInfo


ChannelEvent = Publication | Join | Leave
"""What a broker carries from node to node."""
