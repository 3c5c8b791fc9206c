"""Bytes in, values out; values in, bytes out: the JSON encoding of the client protocol.

A frame is one WebSocket message holding one or more JSON objects separated by ``\\n``.
Decoding never raises on what a client sends: a frame is either a list of commands or the
``Disconnect`` to close the connection with. Every encoder returns one line of JSON with no
``\\n`` inside, so a writer may join any number of them with ``b"\\n"`` into one frame.
"""

from __future__ import annotations

from typing import Final

import msgspec
import msgspec.inspect

from .codes import Disconnect, DisconnectCode, Error, ErrorCode
from .messages import ClientInfo, Command, Method, Publication, Push, Reply, raw

__all__ = [
    "PING",
    "RefusedCommand",
    "decode_frame",
    "encode_error_reply",
    "encode_publication_push",
    "encode_push",
    "encode_reply",
]

PING: Final = b"{}"
"""The server's ping: an empty reply. The client answers with the empty command ``{}``."""

_decoder: Final = msgspec.json.Decoder(Command)
_encoder: Final = msgspec.json.Encoder()


class _PushEnvelope(msgspec.Struct):
    """How a push travels on a bidirectional connection: ``{"push": {...}}``."""

    push: Push


class RefusedCommand(msgspec.Struct, frozen=True):
    """A command with an id that is well formed but for fields ``client.proto`` does not
    have: it is not run, and its reply is ``error`` (107 bad request naming the fields)."""

    id: int
    method: Method
    error: Error


def decode_frame(frame: bytes | str) -> list[Command | RefusedCommand] | Disconnect:
    """Decode every command in ``frame``, in order, or say why the connection must end.

    Blank lines are skipped, so an empty frame yields an empty list. Anything else wrong
    (bytes that are not UTF-8, malformed JSON, a line that is not an object, a field of the
    wrong type or out of range, a request without its required channel, a command other than
    ``send`` or the pong ``{}`` without an id) yields a ``Disconnect`` with
    ``DisconnectCode.BAD_REQUEST`` and a reason naming the problem; the commands before the
    bad line are dropped with it. Never raises.

    A command with an id and a known method that also carries fields the protocol does not
    have is a :class:`RefusedCommand` naming them (``subscribe.colour``), to be answered with
    its error; without an id (``send``, the pong ``{}``) such a command ends the connection,
    which is the only way to tell the client. A command with an id but no known method decodes
    normally (``method`` is None, whatever else it holds); the caller chooses how to answer.
    """
    if isinstance(frame, bytes) and not frame.isascii():
        # msgspec validates the strings it decodes but passes Raw payloads through as they
        # are; checking the whole frame keeps invalid UTF-8 from reaching other clients.
        try:
            frame.decode()
        except UnicodeDecodeError:
            return _bad_request("frame is not valid UTF-8")
    lines = frame.split("\n") if isinstance(frame, str) else frame.split(b"\n")
    commands: list[Command | RefusedCommand] = []
    for line in lines:
        if not line.strip():
            continue
        unknown: list[str] = []
        try:
            try:
                command = _decoder.decode(line)
            except msgspec.ValidationError as exc:
                if not str(exc).startswith("Object contains unknown field"):
                    raise
                command = _decoder.decode(_without_unknown_fields(line, unknown))
        except (ValueError, RecursionError) as exc:
            # ValueError covers msgspec's DecodeError/ValidationError and the Unicode errors
            # it lets through (e.g. a lone surrogate in a str frame); RecursionError is its
            # answer to JSON nested too deeply.
            return _bad_request(_describe(exc))
        screened = _screen(command, unknown)
        if isinstance(screened, str):
            return _bad_request(screened)
        commands.append(screened)
    return commands


_COMMAND_TYPE: Final = msgspec.inspect.type_info(Command)


def _without_unknown_fields(line: bytes | str, found: list[str]) -> bytes:
    """``line`` re-encoded without the fields ``Command`` does not declare, whose dotted paths
    are appended to ``found``. Only a refused command takes this path, so its payloads being
    re-encoded (not byte for byte) is of no consequence.

    Raises:
        ValueError: ``line`` is not JSON.
    """
    value = msgspec.json.decode(line)
    _strip(value, _COMMAND_TYPE, "", found)
    return msgspec.json.encode(value)


def _strip(value: object, kind: msgspec.inspect.Type, path: str, found: list[str]) -> None:
    if isinstance(kind, msgspec.inspect.UnionType):  # an optional request or tree node
        structs = [t for t in kind.types if isinstance(t, msgspec.inspect.StructType)]
        if not structs:
            return
        kind = structs[0]
    if isinstance(kind, msgspec.inspect.StructType) and isinstance(value, dict):
        fields = {field.encode_name: field.type for field in kind.fields}
        for key in list(value):
            where = f"{path}.{key}" if path else str(key)
            if key in fields:
                _strip(value[key], fields[key], where, found)
            else:
                found.append(where)
                del value[key]
    elif isinstance(kind, msgspec.inspect.DictType) and isinstance(value, dict):
        for key, item in value.items():
            _strip(item, kind.value_type, f"{path}[{key!r}]", found)
    elif isinstance(kind, msgspec.inspect.ListType) and isinstance(value, list):
        for index, item in enumerate(value):
            _strip(item, kind.item_type, f"{path}[{index}]", found)


def encode_reply(reply: Reply) -> bytes:
    """Encode ``reply`` as one line of JSON, writing only fields that differ from defaults."""
    return _one_line(_encoder.encode(reply))


def encode_error_reply(id: int, error: Error) -> bytes:
    """Encode the reply that fails command ``id`` with ``error``."""
    return _one_line(_encoder.encode(Reply(id=id, error=error)))


def encode_push(push: Push) -> bytes:
    """Encode ``push`` as one line of JSON, wrapped as ``{"push": {...}}``."""
    return _one_line(_encoder.encode(_PushEnvelope(push)))


def encode_publication_push(
    channel: str,
    data: bytes,
    offset: int = 0,
    info: ClientInfo | None = None,
    tags: dict[str, str] | None = None,
    delta: bool = False,
    time: int = 0,
) -> bytes:
    """Encode a publication in ``channel`` once, to be sent unchanged to every subscriber.

    ``data`` must already be one valid JSON value in UTF-8 (the publisher's payload); it is
    copied into the output as is, except that raw newlines (JSON whitespace only) are removed
    to keep the output on one line. Nothing validates ``data``.
    """
    pub = Publication(
        data=raw(data), info=info, offset=offset, tags=tags or {}, delta=delta, time=time
    )
    return encode_push(Push(channel=channel, pub=pub))


def _one_line(encoded: bytes) -> bytes:
    # msgspec escapes newlines inside strings, so a raw newline can only come from a Raw
    # payload, where valid JSON allows it solely as whitespace: dropping it is lossless.
    return encoded.replace(b"\n", b"") if b"\n" in encoded else encoded


def _screen(command: Command, unknown: list[str]) -> Command | RefusedCommand | str:
    """A decoded command as the session gets it, whatever the wire format: itself, a refusal
    naming the ``unknown`` fields it carried, or (a str) why the whole frame is refused."""
    method = command.method
    if command.id == 0 and method is not None and method is not Method.SEND:
        return f"{method.value} command without id"
    if command.subscribe is not None and not command.subscribe.channel:
        return "subscribe without channel"
    if unknown and command.id == 0:
        return f"unknown field {', '.join(unknown)}"
    if unknown and method is not None:
        detail = f"{method.value}: unknown field {', '.join(unknown)} (not in client.proto)"
        return RefusedCommand(command.id, method, Error.of(ErrorCode.BAD_REQUEST, detail))
    return command


def _describe(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, UnicodeError):
        return "frame is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return str(exc)


def _bad_request(detail: str) -> Disconnect:
    return Disconnect.of(DisconnectCode.BAD_REQUEST, f"bad request: {detail}")
