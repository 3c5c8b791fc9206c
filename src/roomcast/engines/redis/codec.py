"""What the Redis engine publishes on a channel's pub/sub channel, in one of two forms.

An event the broker publishes is the shared msgpack form of :mod:`roomcast.engines.codec`. A
publication the history script adds and announces in the same step (see :mod:`.scripts`) is
``P<offset>:<epoch>:<stored publication>``, composed in Lua; msgpack events are arrays, whose
first byte is never ``P``, so one byte tells the two apart.
"""

from __future__ import annotations

from roomcast.engines import codec as shared_codec
from roomcast.publication import ChannelEvent

__all__ = ["decode_event", "encode_event"]


def encode_event(event: ChannelEvent) -> bytes:
    """The payload the broker publishes for ``event``."""
    return shared_codec.encode_event(event)


def decode_event(payload: bytes) -> ChannelEvent:
    """The event of a payload the broker or the history script published.

    Raises:
        msgspec.DecodeError, ValueError: the payload is neither form.
    """
    if payload[:1] == b"P":
        offset, epoch, stored = payload[1:].split(b":", 2)
        return shared_codec.decode_stored(stored, int(offset), epoch.decode())
    return shared_codec.decode_event(payload)
