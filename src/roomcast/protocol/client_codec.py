"""The encodings a Centrifuge client may speak, each as one value a session is given.

A session neither knows nor cares which encoding its client chose: it decodes frames and
encodes replies and pushes through its :class:`ClientCodec`. ``JSON`` is the default (text
frames of newline-separated objects); ``PROTOBUF`` is the ``centrifuge-protobuf`` subprotocol
(binary frames of length-delimited messages). What each encoder returns is one message that a
writer may join with the others of the same codec: text joined by ``\\n``, bytes concatenated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from . import codec, protobuf
from .codec import RefusedCommand
from .codes import Disconnect, Error
from .messages import Command, Push, Reply

__all__ = ["JSON", "PROTOBUF", "ClientCodec", "Encoding", "codec_for"]


class Encoding(Enum):
    """How a client's frames are encoded; the value is the name Centrifugo's ``format`` takes."""

    JSON = "json"
    PROTOBUF = "protobuf"


@dataclass(frozen=True, slots=True)
class ClientCodec:
    """One encoding of the client protocol: frames in, messages out.

    ``binary`` says the messages are bytes for binary frames (else text for text frames);
    ``ping`` is the server's ping message. ``decode_frame`` never raises on client input (see
    :func:`roomcast.protocol.codec.decode_frame`).
    """

    encoding: Encoding
    binary: bool
    ping: str | bytes
    decode_frame: Callable[[bytes | str], list[Command | RefusedCommand] | Disconnect]
    encode_reply: Callable[[Reply], str | bytes]
    encode_error_reply: Callable[[int, Error], str | bytes]
    encode_push: Callable[[Push], str | bytes]


JSON: Final = ClientCodec(
    encoding=Encoding.JSON,
    binary=False,
    ping=codec.PING.decode(),
    decode_frame=codec.decode_frame,
    encode_reply=lambda reply: codec.encode_reply(reply).decode(),
    encode_error_reply=lambda id, error: codec.encode_error_reply(id, error).decode(),
    encode_push=lambda push: codec.encode_push(push).decode(),
)
"""Protocol v2 in JSON: text frames, one object a line."""

PROTOBUF: Final = ClientCodec(
    encoding=Encoding.PROTOBUF,
    binary=True,
    ping=protobuf.PING,
    decode_frame=protobuf.decode_frame,
    encode_reply=protobuf.encode_reply,
    encode_error_reply=protobuf.encode_error_reply,
    encode_push=protobuf.encode_push,
)
"""Protocol v2 in Protobuf: binary frames of length-delimited messages."""


def codec_for(encoding: Encoding) -> ClientCodec:
    """The codec of ``encoding``."""
    return JSON if encoding is Encoding.JSON else PROTOBUF
