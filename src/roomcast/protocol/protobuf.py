"""Bytes in, values out; values in, bytes out: the Protobuf encoding of the client protocol.

The same typed values as the JSON codec (:mod:`.messages`), in the binary form the SDKs'
protobuf builds speak (the ``centrifuge-protobuf`` WebSocket subprotocol, Centrifugo's
``?format=protobuf``). Any transport can use it: it only turns bytes into commands and
replies or pushes into bytes.

Framing: a frame is one or more messages, each preceded by its length as a varint (Protobuf's
"length-delimited" form). Commands are ``Command`` messages; replies and pushes are ``Reply``
messages, a push being a ``Reply`` whose ``push`` field is set. Every encoder returns one
length-delimited message, so a writer may concatenate any number of them into one frame.

Payloads (``data``, ``conn_info``, ``chan_info``) are bytes on this wire: a decoded command's
payload fields hold the bytes as the client sent them, as a ``msgspec.Raw`` that is *not*
necessarily JSON; an encoder writes a ``Raw`` payload's bytes as they are. Which bytes a
Protobuf client is sent for a publication is the fan-out's business (``roomcast.wire``).

Decoding never raises on what a client sends: a frame is a list of commands or the
``Disconnect`` (bad request) to close with, as :func:`.codec.decode_frame` defines it; a
command carrying field numbers the schema does not have is refused by name, as the JSON codec
refuses unknown fields.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from .codec import RefusedCommand, _bad_request, _screen
from .codes import Disconnect, Error
from .messages import ClientInfo, Command, Publication, Push, Reply, raw
from .protobuf_schema import message_classes

__all__ = [
    "PING",
    "decode_frame",
    "encode_error_reply",
    "encode_publication_push",
    "encode_push",
    "encode_reply",
    "varint",
]

PING: Final = b"\x00"
"""The server's ping: an empty ``Reply``, length-delimited. The client's pong is the same
byte, an empty ``Command``."""

_MESSAGES: Final = message_classes()
_COMMAND: Final = _MESSAGES["Command"]
_REPLY: Final = _MESSAGES["Reply"]
_BYTES: Final = FieldDescriptor.TYPE_BYTES
_MESSAGE: Final = FieldDescriptor.TYPE_MESSAGE
_OPAQUE: Final = frozenset({"TrackBatch"})
"""Messages decoded as their serialized bytes: roomcast only refuses them (shared-poll)."""
_MAX_VARINT_BYTES: Final = 10


def varint(value: int) -> bytes:
    """``value`` (0 or more) as a Protobuf varint: seven bits a byte, least significant first."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(frame: bytes, pos: int) -> tuple[int, int] | None:
    """The varint at ``pos`` and the position after it, or None if the frame ends inside it
    or it runs longer than a 64-bit varint can."""
    result = shift = 0
    for index in range(pos, min(len(frame), pos + _MAX_VARINT_BYTES)):
        byte = frame[index]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, index + 1
        shift += 7
    return None


def decode_frame(frame: bytes | str) -> list[Command | RefusedCommand] | Disconnect:
    """Decode every length-delimited ``Command`` in ``frame``, in order, or say why the
    connection must end; never raises.

    A text frame, a length running past the frame's end, bytes that are not a ``Command``
    (invalid UTF-8 in a string field included) or a value out of its bounds make the whole
    frame a bad request, as do the checks :func:`.codec.decode_frame` makes (an id, a
    subscribe's channel). A command with an id whose messages carry field numbers the schema
    does not have is a :class:`RefusedCommand` naming them (``subscribe.#100``); without an id
    it ends the connection.
    """
    if isinstance(frame, str):
        return _bad_request("the protobuf protocol takes binary frames, not text")
    commands: list[Command | RefusedCommand] = []
    pos, end = 0, len(frame)
    while pos < end:
        header = _read_varint(frame, pos)
        if header is None:
            return _bad_request("truncated length prefix")
        length, pos = header
        if pos + length > end:
            return _bad_request(f"a command of {length} bytes runs past the frame's end")
        body = frame[pos : pos + length]
        pos += length
        unknown: list[str] = []
        try:
            message = _COMMAND.FromString(body)
            command = msgspec.convert(_as_dict(message, "", unknown), Command)
        except DecodeError as exc:
            return _bad_request(f"not a protobuf Command: {exc}")
        except msgspec.ValidationError as exc:
            return _bad_request(str(exc))
        screened = _screen(command, unknown)
        if isinstance(screened, str):
            return _bad_request(screened)
        commands.append(screened)
    return commands


def _as_dict(message: Any, path: str, unknown: list[str]) -> dict[str, Any]:
    """The fields ``message`` sets, as ``msgspec.convert`` takes them (bytes as ``Raw``);
    the dotted paths of field numbers it does not know are appended to ``unknown``."""
    strangers = UnknownFieldSet(message)
    if len(strangers):
        unknown.extend(f"{path}#{strangers[i].field_number}" for i in range(len(strangers)))
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        name = field.name
        where = f"{path}.{name}" if path else name
        if field.type == _BYTES:
            out[name] = msgspec.Raw(value)
        elif field.type != _MESSAGE:
            out[name] = list(value) if field.is_repeated else value
        elif field.message_type.GetOptions().map_entry:
            target = field.message_type.fields_by_name["value"]
            if target.type == _MESSAGE:
                out[name] = {k: _as_dict(v, f"{where}[{k!r}]", unknown) for k, v in value.items()}
            elif target.type == _BYTES:
                out[name] = {k: msgspec.Raw(v) for k, v in value.items()}
            else:
                out[name] = dict(value)
        elif field.message_type.name in _OPAQUE:
            out[name] = [msgspec.Raw(item.SerializeToString()) for item in value]
        elif field.is_repeated:
            out[name] = [_as_dict(item, f"{where}[{i}]", unknown) for i, item in enumerate(value)]
        else:
            out[name] = _as_dict(value, where, unknown)
    return out


def _fill(message: Any, value: msgspec.Struct) -> None:
    """Set on ``message`` every field of ``value`` that is not empty. Proto3 writes no scalar
    at its default, so only presence needs care: a nested struct, even an empty one (an
    ``unsubscribe`` result), marks its field set."""
    names = zip(value.__struct_fields__, value.__struct_encode_fields__, strict=True)
    for name, wire_name in names:
        item = getattr(value, name)
        if item is None:
            continue
        if isinstance(item, msgspec.Raw):
            if item:
                setattr(message, wire_name, bytes(item))
        elif isinstance(item, msgspec.Struct):
            nested = getattr(message, wire_name)
            nested.SetInParent()
            _fill(nested, item)
        elif isinstance(item, list):
            if item:
                container = getattr(message, wire_name)
                if isinstance(item[0], msgspec.Struct):
                    for element in item:
                        _fill(container.add(), element)
                else:
                    container.extend(item)
        elif isinstance(item, dict):
            if item:
                mapping = getattr(message, wire_name)
                for key, element in item.items():
                    if isinstance(element, msgspec.Struct):
                        _fill(mapping[key], element)
                    else:
                        mapping[key] = element
        elif item:
            setattr(message, wire_name, item)


def _delimited(body: bytes) -> bytes:
    return varint(len(body)) + body


def encode_reply(reply: Reply) -> bytes:
    """``reply`` as one length-delimited ``Reply``."""
    message = _REPLY()
    _fill(message, reply)
    return _delimited(message.SerializeToString())


def encode_error_reply(id: int, error: Error) -> bytes:
    """The reply that fails command ``id`` with ``error``."""
    return encode_reply(Reply(id=id, error=error))


def encode_push(push: Push) -> bytes:
    """``push`` as one length-delimited ``Reply`` whose ``push`` field carries it."""
    message = _REPLY()
    nested = message.push
    nested.SetInParent()
    _fill(nested, push)
    return _delimited(message.SerializeToString())


def encode_publication_push(
    channel: str,
    data: bytes,
    offset: int = 0,
    info: ClientInfo | None = None,
    tags: dict[str, str] | None = None,
    delta: bool = False,
    time: int = 0,
) -> bytes:
    """A publication in ``channel`` as a push, encoded once to be sent to every subscriber;
    ``data`` (any bytes) is written as it is."""
    pub = Publication(
        data=raw(data),
        info=info,
        offset=offset,
        tags=tags or {},
        delta=delta,
        time=time,
    )
    return encode_push(Push(channel=channel, pub=pub))
