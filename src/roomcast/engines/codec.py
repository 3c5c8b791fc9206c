"""The msgpack forms every networked engine uses for what it sends and stores.

A broker event is a msgpack array tagged by kind (``pub``, ``join``, ``leave``); a stored
publication is (data, info, tags, published_at) without its position, which the engine keeps
beside it. Redis, PostgreSQL and NATS write the same bytes, so a payload means one thing
everywhere. ``published_at`` came last, with a default: a payload without it decodes (as 0),
and a release that does not know it ignores it.
"""

from __future__ import annotations

from typing import Final

import msgspec

from roomcast.publication import ChannelEvent, ClientInfo, Join, Leave, Publication

__all__ = [
    "StoredInfo",
    "decode_event",
    "decode_stored",
    "encode_event",
    "encode_stored",
    "encoder",
    "info_decoder",
    "load_info",
    "store_info",
]


class StoredInfo(msgspec.Struct, array_like=True, frozen=True):
    """A ClientInfo as engines store it."""

    user: str
    client: str
    conn_info: bytes
    chan_info: bytes


class _Stored(msgspec.Struct, array_like=True, frozen=True):
    data: bytes
    info: StoredInfo | None
    tags: dict[str, str]
    published_at: float = 0.0


class _Pub(msgspec.Struct, array_like=True, frozen=True, tag="pub"):
    data: bytes
    offset: int
    epoch: str
    info: StoredInfo | None
    tags: dict[str, str]
    published_at: float = 0.0


class _Join(msgspec.Struct, array_like=True, frozen=True, tag="join"):
    info: StoredInfo


class _Leave(msgspec.Struct, array_like=True, frozen=True, tag="leave"):
    info: StoredInfo


encoder: Final = msgspec.msgpack.Encoder()
info_decoder: Final = msgspec.msgpack.Decoder(StoredInfo)
_stored_decoder: Final = msgspec.msgpack.Decoder(_Stored)
_event_decoder: Final = msgspec.msgpack.Decoder(_Pub | _Join | _Leave)


def store_info(info: ClientInfo) -> StoredInfo:
    return StoredInfo(info.user, info.client, info.conn_info, info.chan_info)


def load_info(stored: StoredInfo) -> ClientInfo:
    return ClientInfo(stored.user, stored.client, stored.conn_info, stored.chan_info)


def encode_event(event: ChannelEvent) -> bytes:
    """A broker event as msgpack."""
    if isinstance(event, Join):
        return encoder.encode(_Join(store_info(event.info)))
    if isinstance(event, Leave):
        return encoder.encode(_Leave(store_info(event.info)))
    info = None if event.info is None else store_info(event.info)
    return encoder.encode(
        _Pub(event.data, event.offset, event.epoch, info, dict(event.tags), event.published_at)
    )


def decode_event(payload: bytes) -> ChannelEvent:
    """The event ``encode_event`` wrote.

    Raises:
        msgspec.DecodeError: ``payload`` is not one.
    """
    message = _event_decoder.decode(payload)
    if isinstance(message, _Join):
        return Join(load_info(message.info))
    if isinstance(message, _Leave):
        return Leave(load_info(message.info))
    info = None if message.info is None else load_info(message.info)
    return Publication(
        message.data, message.offset, message.epoch, info, message.tags, message.published_at
    )


def encode_stored(publication: Publication) -> bytes:
    """A publication as history keeps it: without offset and epoch."""
    info = None if publication.info is None else store_info(publication.info)
    return encoder.encode(
        _Stored(publication.data, info, dict(publication.tags), publication.published_at)
    )


def decode_stored(payload: bytes, offset: int, epoch: str) -> Publication:
    """The publication ``encode_stored`` wrote, placed at ``offset`` in ``epoch``.

    Raises:
        msgspec.DecodeError: ``payload`` is not one.
    """
    stored = _stored_decoder.decode(payload)
    info = None if stored.info is None else load_info(stored.info)
    return Publication(stored.data, offset, epoch, info, stored.tags, stored.published_at)
