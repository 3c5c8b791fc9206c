"""How the NATS engines write what they store and send: msgpack payloads and stream headers.

A broker event is a msgpack array tagged by kind (``pub``, ``join``, ``leave``). A message of
the history stream holds the publication without its position (msgpack: data, info, tags);
its headers hold the position and the deadlines, all a reader or the next writer needs::

    Roomcast-Epoch          the stream's epoch
    Roomcast-Offset         the publication's offset (0: a position with no publication yet)
    Roomcast-Floor          the oldest offset the size limit still keeps, as of this message
    Roomcast-Expires        when this publication expires (seconds since 1970)
    Roomcast-Meta-Expires   when the position expires unless another publication follows

A presence entry is a msgpack array (expires at, info).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from roomcast.publication import ChannelEvent, ClientInfo, Join, Leave, Publication

__all__ = [
    "StreamHead",
    "decode_entry",
    "decode_event",
    "decode_stored",
    "encode_entry",
    "encode_event",
    "encode_stored",
]


class _Info(msgspec.Struct, array_like=True, frozen=True):
    user: str
    client: str
    conn_info: bytes
    chan_info: bytes


class _Stored(msgspec.Struct, array_like=True, frozen=True):
    data: bytes
    info: _Info | None
    tags: dict[str, str]


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    expires_at: float
    info: _Info


class _Pub(msgspec.Struct, array_like=True, frozen=True, tag="pub"):
    data: bytes
    offset: int
    epoch: str
    info: _Info | None
    tags: dict[str, str]


class _Join(msgspec.Struct, array_like=True, frozen=True, tag="join"):
    info: _Info


class _Leave(msgspec.Struct, array_like=True, frozen=True, tag="leave"):
    info: _Info


_encoder: Final = msgspec.msgpack.Encoder()
_stored_decoder: Final = msgspec.msgpack.Decoder(_Stored)
_entry_decoder: Final = msgspec.msgpack.Decoder(_Entry)
_event_decoder: Final = msgspec.msgpack.Decoder(_Pub | _Join | _Leave)


def _info(info: ClientInfo) -> _Info:
    return _Info(info.user, info.client, info.conn_info, info.chan_info)


def _client_info(info: _Info) -> ClientInfo:
    return ClientInfo(info.user, info.client, info.conn_info, info.chan_info)


def encode_event(event: ChannelEvent) -> bytes:
    """A broker event as msgpack."""
    if isinstance(event, Join):
        return _encoder.encode(_Join(_info(event.info)))
    if isinstance(event, Leave):
        return _encoder.encode(_Leave(_info(event.info)))
    info = None if event.info is None else _info(event.info)
    return _encoder.encode(_Pub(event.data, event.offset, event.epoch, info, dict(event.tags)))


def decode_event(payload: bytes) -> ChannelEvent:
    """The event ``encode_event`` wrote.

    Raises:
        msgspec.DecodeError: ``payload`` is not one.
    """
    message = _event_decoder.decode(payload)
    if isinstance(message, _Join):
        return Join(_client_info(message.info))
    if isinstance(message, _Leave):
        return Leave(_client_info(message.info))
    info = None if message.info is None else _client_info(message.info)
    return Publication(message.data, message.offset, message.epoch, info, message.tags)


def encode_stored(publication: Publication) -> bytes:
    """A publication as the history stream stores it: without offset and epoch."""
    info = None if publication.info is None else _info(publication.info)
    return _encoder.encode(_Stored(publication.data, info, dict(publication.tags)))


def decode_stored(payload: bytes, offset: int, epoch: str) -> Publication:
    """The publication ``encode_stored`` wrote, placed at ``offset`` in ``epoch``.

    Raises:
        msgspec.DecodeError: ``payload`` is not one.
    """
    stored = _stored_decoder.decode(payload)
    info = None if stored.info is None else _client_info(stored.info)
    return Publication(stored.data, offset, epoch, info, stored.tags)


def encode_entry(expires_at: float, info: ClientInfo) -> bytes:
    """A presence entry: the client's info and when it expires."""
    return _encoder.encode(_Entry(expires_at, _info(info)))


def decode_entry(payload: bytes) -> tuple[float, ClientInfo]:
    """(expires at, info) of an entry ``encode_entry`` wrote.

    Raises:
        msgspec.DecodeError: ``payload`` is not one.
    """
    entry = _entry_decoder.decode(payload)
    return entry.expires_at, _client_info(entry.info)


_EPOCH: Final = "Roomcast-Epoch"
_OFFSET: Final = "Roomcast-Offset"
_FLOOR: Final = "Roomcast-Floor"
_EXPIRES: Final = "Roomcast-Expires"
_META_EXPIRES: Final = "Roomcast-Meta-Expires"


@dataclass(frozen=True, slots=True)
class StreamHead:
    """The position and deadlines one message of the history stream carries (see the module
    doc); the newest message of a channel's subject is the stream's current state."""

    epoch: str
    offset: int
    floor: int
    expires_at: float
    meta_expires_at: float
    seq: int = 0
    """The message's sequence in the JetStream stream (0 before it is stored)."""

    @classmethod
    def parse(cls, headers: Mapping[str, str] | None, seq: int) -> StreamHead | None:
        """The head in ``headers``, or None when they hold none (not written by roomcast)."""
        if not headers:
            return None
        try:
            return cls(
                headers[_EPOCH],
                int(headers[_OFFSET]),
                int(headers[_FLOOR]),
                float(headers[_EXPIRES]),
                float(headers[_META_EXPIRES]),
                seq,
            )
        except (KeyError, ValueError):
            return None

    def headers(self) -> dict[str, str]:
        return {
            _EPOCH: self.epoch,
            _OFFSET: str(self.offset),
            _FLOOR: str(self.floor),
            _EXPIRES: repr(self.expires_at),
            _META_EXPIRES: repr(self.meta_expires_at),
        }

    @property
    def kept(self) -> bool:
        """Whether the size limit keeps this message's publication (a position-only message,
        offset 0, keeps none)."""
        return self.offset >= self.floor
