"""Bytes in, values out; values in, bytes out: the JSON encoding of the client protocol.

A frame is one WebSocket message holding one or more JSON objects separated by ``\\n``.
Decoding never raises on what a client sends: a frame is either a list of commands or the
``Disconnect`` to close the connection with. Every encoder returns one line of JSON with no
``\\n`` inside, so a writer may join any number of them with ``b"\\n"`` into one frame.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .codes import Disconnect, DisconnectCode, Error
from .messages import ClientInfo, Command, Method, Publication, Push, Reply, raw

__all__ = [
    "PING",
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


def decode_frame(frame: bytes | str) -> list[Command] | Disconnect:
    """Decode every command in ``frame``, in order, or say why the connection must end.

    Blank lines are skipped, so an empty frame yields an empty list. Anything else wrong
    (bytes that are not UTF-8, malformed JSON, a line that is not an object, a field of the
    wrong type or out of range, a request without its required channel, a command other than
    ``send`` or the pong ``{}`` without an id) yields a ``Disconnect`` with
    ``DisconnectCode.BAD_REQUEST`` and a reason naming the problem; the commands before the
    bad line are dropped with it. Never raises.

    A command with an id but no known method decodes normally (``method`` is None); the
    caller chooses how to answer it.
    """
    if isinstance(frame, bytes) and not frame.isascii():
        # msgspec validates the strings it decodes but passes Raw payloads through as they
        # are; checking the whole frame keeps invalid UTF-8 from reaching other clients.
        try:
            frame.decode()
        except UnicodeDecodeError:
            return _bad_request("frame is not valid UTF-8")
    lines = frame.split("\n") if isinstance(frame, str) else frame.split(b"\n")
    commands: list[Command] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            command = _decoder.decode(line)
        except (ValueError, RecursionError) as exc:
            # ValueError covers msgspec's DecodeError/ValidationError and the Unicode errors
            # it lets through (e.g. a lone surrogate in a str frame); RecursionError is its
            # answer to JSON nested too deeply.
            return _bad_request(_describe(exc))
        problem = _problem(command)
        if problem is not None:
            return _bad_request(problem)
        commands.append(command)
    return commands


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


def _problem(command: Command) -> str | None:
    """What makes a well-typed command unacceptable, or None."""
    method = command.method
    if command.id == 0 and method is not None and method is not Method.SEND:
        return f"{method.value} command without id"
    if command.subscribe is not None and not command.subscribe.channel:
        return "subscribe without channel"
    return None


def _describe(exc: ValueError | RecursionError) -> str:
    if isinstance(exc, UnicodeError):
        return "frame is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return str(exc)


def _bad_request(detail: str) -> Disconnect:
    return Disconnect.of(DisconnectCode.BAD_REQUEST, f"bad request: {detail}")
