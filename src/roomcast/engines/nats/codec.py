"""How the NATS engines write what they store and send: msgpack payloads and stream headers.

Broker events and stored publications are the forms of :mod:`roomcast.engines.codec`. A
message of the history stream holds the publication without its position; its headers hold
the position and the deadlines, all a reader or the next writer needs::

    Roomcast-Epoch          the stream's epoch
    Roomcast-Offset         the publication's offset (0: a position with no publication yet)
    Roomcast-Floor          the oldest offset the size limit still keeps, as of this message
    Roomcast-Expires        when this publication expires (seconds since 1970)
    Roomcast-Meta-Expires   when the position expires unless another publication follows
    Roomcast-Version        the last version a publication carried (absent: none), and its
    Roomcast-Version-Epoch  version epoch, carried on by every later message of the epoch

A presence entry is a msgpack array (expires at, info).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from roomcast.engines.codec import (
    StoredInfo,
    decode_event,
    decode_stored,
    encode_event,
    encode_stored,
    encoder,
    load_info,
    store_info,
)
from roomcast.publication import ClientInfo

__all__ = [
    "StreamHead",
    "decode_entry",
    "decode_event",
    "decode_stored",
    "encode_entry",
    "encode_event",
    "encode_stored",
]


class _Entry(msgspec.Struct, array_like=True, frozen=True):
    expires_at: float
    info: StoredInfo


_entry_decoder: Final = msgspec.msgpack.Decoder(_Entry)


def encode_entry(expires_at: float, info: ClientInfo) -> bytes:
    """A presence entry: the client's info and when it expires."""
    return encoder.encode(_Entry(expires_at, store_info(info)))


def decode_entry(payload: bytes) -> tuple[float, ClientInfo]:
    """(expires at, info) of an entry ``encode_entry`` wrote.

    Raises:
        msgspec.DecodeError: ``payload`` is not one.
    """
    entry = _entry_decoder.decode(payload)
    return entry.expires_at, load_info(entry.info)


_EPOCH: Final = "Roomcast-Epoch"
_OFFSET: Final = "Roomcast-Offset"
_FLOOR: Final = "Roomcast-Floor"
_EXPIRES: Final = "Roomcast-Expires"
_META_EXPIRES: Final = "Roomcast-Meta-Expires"
_VERSION: Final = "Roomcast-Version"
_VERSION_EPOCH: Final = "Roomcast-Version-Epoch"


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
    version: int = 0
    """The stream's last version, as of this message (0 for none)."""
    version_epoch: str = ""

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
                int(headers.get(_VERSION, 0)),
                headers.get(_VERSION_EPOCH, ""),
            )
        except (KeyError, ValueError):
            return None

    def headers(self) -> dict[str, str]:
        headers = {
            _EPOCH: self.epoch,
            _OFFSET: str(self.offset),
            _FLOOR: str(self.floor),
            _EXPIRES: repr(self.expires_at),
            _META_EXPIRES: repr(self.meta_expires_at),
        }
        if self.version:
            headers[_VERSION] = str(self.version)
        if self.version_epoch:
            headers[_VERSION_EPOCH] = self.version_epoch
        return headers

    @property
    def kept(self) -> bool:
        """Whether the size limit keeps this message's publication (a position-only message,
        offset 0, keeps none)."""
        return self.offset >= self.floor
