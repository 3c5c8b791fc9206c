"""What travels through a channel: a Publication and the ClientInfo of its publisher."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ClientInfo", "Publication"]


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
    history stream (zero and empty when the channel keeps no history).
    """

    data: bytes
    offset: int = 0
    epoch: str = ""
    info: ClientInfo | None = None
    tags: dict[str, str] = field(default_factory=dict)
