"""How the PostgreSQL engines encode publications for history rows and events for NOTIFY.

A history row keeps a publication's data, info and tags as msgpack (its offset and epoch are
columns or travel beside it). A notification is text (under 8000 bytes, no NUL), so binary parts
travel as base64, and so does the roomcast channel, so that a receiver filters on it before
decoding anything (see :mod:`roomcast.engines.postgres_broker`)::

    P<offset>:<epoch>:<channel>:<stored publication>   added to a stream (composed in SQL)
    E<nonce>:<channel>:<event>                          any other event (msgpack, tagged)
    L<id>:<channel>                                     too big: the text is in the side table

The nonce keeps two identical events of one transaction apart: PostgreSQL delivers only one of
several identical notifications a transaction sends. Base64 and epochs never contain ``:``.
"""

from __future__ import annotations

import base64
from typing import Final

import msgspec

from roomcast.publication import ChannelEvent, ClientInfo, Join, Leave, Publication

__all__ = [
    "channel_key",
    "decode_notification",
    "decode_publication",
    "encode_event",
    "encode_publication",
    "notification_key",
]


class _StoredInfo(msgspec.Struct, array_like=True, frozen=True):
    user: str
    client: str
    conn_info: bytes
    chan_info: bytes


class _StoredPublication(msgspec.Struct, array_like=True, frozen=True):
    data: bytes
    info: _StoredInfo | None
    tags: dict[str, str]


class _PubEvent(msgspec.Struct, array_like=True, frozen=True, tag="pub"):
    data: bytes
    offset: int
    epoch: str
    info: _StoredInfo | None
    tags: dict[str, str]


class _JoinEvent(msgspec.Struct, array_like=True, frozen=True, tag="join"):
    info: _StoredInfo


class _LeaveEvent(msgspec.Struct, array_like=True, frozen=True, tag="leave"):
    info: _StoredInfo


_encoder: Final = msgspec.msgpack.Encoder()
_publication_decoder: Final = msgspec.msgpack.Decoder(_StoredPublication)
_event_decoder: Final = msgspec.msgpack.Decoder(_PubEvent | _JoinEvent | _LeaveEvent)


def _stored(info: ClientInfo) -> _StoredInfo:
    return _StoredInfo(info.user, info.client, info.conn_info, info.chan_info)


def _loaded(stored: _StoredInfo) -> ClientInfo:
    return ClientInfo(stored.user, stored.client, stored.conn_info, stored.chan_info)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def channel_key(channel: str) -> str:
    """``channel`` as notifications carry it (base64 of its UTF-8)."""
    return _b64(channel.encode())


def encode_publication(publication: Publication) -> str:
    """The base64 text of ``publication``'s stored form (data, info, tags)."""
    info = None if publication.info is None else _stored(publication.info)
    return _b64(_encoder.encode(_StoredPublication(publication.data, info, dict(publication.tags))))


def decode_publication(stored: bytes, offset: int, epoch: str) -> Publication:
    """A publication from its stored form (raw msgpack) and its place in the stream.

    Raises:
        msgspec.DecodeError: ``stored`` is not a stored publication.
    """
    loaded = _publication_decoder.decode(stored)
    info = None if loaded.info is None else _loaded(loaded.info)
    return Publication(data=loaded.data, offset=offset, epoch=epoch, info=info, tags=loaded.tags)


def encode_event(nonce: int, channel: str, event: ChannelEvent) -> str:
    """The ``E`` notification of ``event`` in ``channel``."""
    message: _PubEvent | _JoinEvent | _LeaveEvent
    if isinstance(event, Join):
        message = _JoinEvent(_stored(event.info))
    elif isinstance(event, Leave):
        message = _LeaveEvent(_stored(event.info))
    else:
        info = None if event.info is None else _stored(event.info)
        message = _PubEvent(event.data, event.offset, event.epoch, info, dict(event.tags))
    return f"E{nonce:x}:{channel_key(channel)}:{_b64(_encoder.encode(message))}"


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
    message = _event_decoder.decode(base64.b64decode(parts[2], validate=True))
    if isinstance(message, _JoinEvent):
        return Join(_loaded(message.info))
    if isinstance(message, _LeaveEvent):
        return Leave(_loaded(message.info))
    info = None if message.info is None else _loaded(message.info)
    return Publication(
        data=message.data, offset=message.offset, epoch=message.epoch, info=info, tags=message.tags
    )
