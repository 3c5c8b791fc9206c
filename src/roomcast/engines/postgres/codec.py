"""How the PostgreSQL engines encode publications for history rows and events for NOTIFY.

A history row keeps a publication's data, info and tags as msgpack (its offset and epoch are
columns or travel beside it). A notification is text (under 8000 bytes, no NUL), so binary parts
travel as base64, and so does the roomcast channel, so that a receiver filters on it before
decoding anything (see :mod:`roomcast.engines.postgres.broker`)::

    P<offset>:<epoch>:<channel>:<stored publication>   added to a stream (composed in SQL)
    E<nonce>:<channel>:<event>                          any other event (msgpack, tagged)
    E<nonce>:!control:<payload>                         a control message (raw bytes)
    L<id>:<channel>                                     too big: the text is in the side table

``!control`` stands where a channel's key would: base64 never yields ``!``, so no channel's
key is it, and an oversized control message takes the side table's path like any event.

The nonce keeps two identical events of one transaction apart: PostgreSQL delivers only one of
several identical notifications a transaction sends. Base64 and epochs never contain ``:``.
"""

from __future__ import annotations

import base64
from typing import Final

from roomcast.engines import codec as shared_codec
from roomcast.publication import ChannelEvent, Publication

CONTROL_KEY: Final = "!control"
"""The key control notifications carry instead of a channel's (see the module doc)."""

__all__ = [
    "CONTROL_KEY",
    "channel_key",
    "decode_control",
    "decode_notification",
    "decode_publication",
    "encode_control",
    "encode_event",
    "encode_publication",
    "notification_key",
]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def channel_key(channel: str) -> str:
    """``channel`` as notifications carry it (base64 of its UTF-8)."""
    return _b64(channel.encode())


def encode_publication(publication: Publication) -> str:
    """The base64 text of ``publication``'s stored form (data, info, tags)."""
    return _b64(shared_codec.encode_stored(publication))


def decode_publication(stored: bytes, offset: int, epoch: str) -> Publication:
    """A publication from its stored form (raw msgpack) and its place in the stream.

    Raises:
        msgspec.DecodeError: ``stored`` is not a stored publication.
    """
    return shared_codec.decode_stored(stored, offset, epoch)


def encode_event(nonce: int, channel: str, event: ChannelEvent) -> str:
    """The ``E`` notification of ``event`` in ``channel``."""
    return f"E{nonce:x}:{channel_key(channel)}:{_b64(shared_codec.encode_event(event))}"


def encode_control(nonce: int, payload: bytes) -> str:
    """The notification of a control message."""
    return f"E{nonce:x}:{CONTROL_KEY}:{_b64(payload)}"


def decode_control(notification: str) -> bytes:
    """The payload of a control notification.

    Raises:
        ValueError: ``notification`` is not one (``binascii.Error`` is a ``ValueError``).
    """
    parts = notification[1:].split(":")
    if notification[:1] != "E" or len(parts) != 3 or parts[1] != CONTROL_KEY:
        raise ValueError(f"not a control notification: {notification[:40]!r}")
    return base64.b64decode(parts[2], validate=True)


def notification_key(payload: str) -> str | None:
    """The channel key a notification names, None when it is none of the three kinds."""
    parts = payload[1:].split(":")
    kind = payload[:1]
    if kind == "P" and len(parts) == 4:
        return parts[2]
    if (kind == "E" and len(parts) == 3) or (kind == "L" and len(parts) == 2):
        return parts[1]
    return None


def decode_notification(payload: str) -> ChannelEvent:
    """The event of a ``P`` or ``E`` notification.

    Raises:
        ValueError: ``payload`` is not one (``msgspec.DecodeError`` and ``binascii.Error`` are
            ``ValueError``).
    """
    parts = payload[1:].split(":")
    if payload[:1] == "P" and len(parts) == 4:
        offset, epoch, _, stored = parts
        return decode_publication(base64.b64decode(stored, validate=True), int(offset), epoch)
    if payload[:1] != "E" or len(parts) != 3:
        raise ValueError(f"not an event notification: {payload[:40]!r}")
    return shared_codec.decode_event(base64.b64decode(parts[2], validate=True))
