"""The Protobuf messages of the Centrifuge client protocol v2, built when this module loads.

The schema below is written from the fields ``client.proto`` documents (package
``centrifugal.centrifuge.protocol``): every message roomcast reads or writes, with the field
numbers and types the SDKs' protobuf builds use, in the notation of a ``.proto`` file
(``"repeated Publication"``, ``"map<string, string>"``). Nothing is generated ahead of time:
:func:`message_classes` turns the table into a ``FileDescriptorProto``, adds it to a private
descriptor pool of the ``protobuf`` runtime and returns its message classes, so the schema has
exactly one source, this table, and no generated file to keep in step with it.

Messages roomcast does not serve are still declared where a command can carry them
(``TrackBatch`` in ``sub_refresh``), so that decoding sees them and the session can refuse them
by name; ``EmulationRequest`` is the body of the bidirectional emulation endpoint.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["PACKAGE", "SCHEMA", "message_classes"]

PACKAGE: Final = "centrifugal.centrifuge.protocol"
"""The protobuf package of the messages: their full names start with it."""

Field = tuple[str, int, str]
"""``(name, number, type)``; ``type`` as a ``.proto`` file writes it."""

SCHEMA: Final[dict[str, tuple[Field, ...]]] = {
    "Error": (("code", 1, "uint32"), ("message", 2, "string"), ("temporary", 3, "bool")),
    "EmulationRequest": (("node", 1, "string"), ("session", 2, "string"), ("data", 3, "bytes")),
    "Command": (
        ("id", 1, "uint32"),
        ("connect", 4, "ConnectRequest"),
        ("subscribe", 5, "SubscribeRequest"),
        ("unsubscribe", 6, "UnsubscribeRequest"),
        ("publish", 7, "PublishRequest"),
        ("presence", 8, "PresenceRequest"),
        ("presence_stats", 9, "PresenceStatsRequest"),
        ("history", 10, "HistoryRequest"),
        ("ping", 11, "PingRequest"),
        ("send", 12, "SendRequest"),
        ("rpc", 13, "RPCRequest"),
        ("refresh", 14, "RefreshRequest"),
        ("sub_refresh", 15, "SubRefreshRequest"),
    ),
    "Reply": (
        ("id", 1, "uint32"),
        ("error", 2, "Error"),
        ("push", 4, "Push"),
        ("connect", 5, "ConnectResult"),
        ("subscribe", 6, "SubscribeResult"),
        ("unsubscribe", 7, "UnsubscribeResult"),
        ("publish", 8, "PublishResult"),
        ("presence", 9, "PresenceResult"),
        ("presence_stats", 10, "PresenceStatsResult"),
        ("history", 11, "HistoryResult"),
        ("ping", 12, "PingResult"),
        ("rpc", 13, "RPCResult"),
        ("refresh", 14, "RefreshResult"),
        ("sub_refresh", 15, "SubRefreshResult"),
    ),
    "Push": (
        ("id", 1, "int64"),
        ("channel", 2, "string"),
        ("pub", 4, "Publication"),
        ("join", 5, "Join"),
        ("leave", 6, "Leave"),
        ("unsubscribe", 7, "Unsubscribe"),
        ("message", 8, "Message"),
        ("subscribe", 9, "Subscribe"),
        ("connect", 10, "Connect"),
        ("disconnect", 11, "Disconnect"),
        ("refresh", 12, "Refresh"),
    ),
    "Dictionary": (("id", 1, "string"), ("data", 2, "bytes"), ("data_b64", 3, "string")),
    "ClientInfo": (
        ("user", 1, "string"),
        ("client", 2, "string"),
        ("conn_info", 3, "bytes"),
        ("chan_info", 4, "bytes"),
    ),
    "Publication": (
        ("data", 4, "bytes"),
        ("info", 5, "ClientInfo"),
        ("offset", 6, "uint64"),
        ("tags", 7, "map<string, string>"),
        ("delta", 8, "bool"),
        ("time", 9, "int64"),
        ("channel", 10, "string"),
        ("key", 11, "string"),
        ("removed", 12, "bool"),
        ("score", 13, "sint64"),
        ("epoch", 14, "string"),
        ("prev_data", 15, "bytes"),
        ("version", 16, "uint64"),
    ),
    "Join": (("info", 1, "ClientInfo"),),
    "Leave": (("info", 1, "ClientInfo"),),
    "Unsubscribe": (("code", 2, "uint32"), ("reason", 3, "string")),
    "Subscribe": (
        ("recoverable", 1, "bool"),
        ("epoch", 4, "string"),
        ("offset", 5, "uint64"),
        ("positioned", 6, "bool"),
        ("data", 7, "bytes"),
    ),
    "Message": (("data", 1, "bytes"),),
    "Connect": (
        ("client", 1, "string"),
        ("version", 2, "string"),
        ("data", 3, "bytes"),
        ("subs", 4, "map<string, SubscribeResult>"),
        ("expires", 5, "bool"),
        ("ttl", 6, "uint32"),
        ("ping", 7, "uint32"),
        ("pong", 8, "bool"),
        ("session", 9, "string"),
        ("node", 10, "string"),
        ("time", 11, "int64"),
    ),
    "Disconnect": (("code", 1, "uint32"), ("reason", 2, "string"), ("reconnect", 3, "bool")),
    "Refresh": (("expires", 1, "bool"), ("ttl", 2, "uint32")),
    "ConnectRequest": (
        ("token", 1, "string"),
        ("data", 2, "bytes"),
        ("subs", 3, "map<string, SubscribeRequest>"),
        ("name", 4, "string"),
        ("version", 5, "string"),
        ("headers", 6, "map<string, string>"),
        ("flag", 7, "int64"),
        ("dict", 8, "string"),
        ("profile", 9, "string"),
    ),
    "ConnectResult": (
        ("client", 1, "string"),
        ("version", 2, "string"),
        ("expires", 3, "bool"),
        ("ttl", 4, "uint32"),
        ("data", 5, "bytes"),
        ("subs", 6, "map<string, SubscribeResult>"),
        ("ping", 7, "uint32"),
        ("pong", 8, "bool"),
        ("session", 9, "string"),
        ("node", 10, "string"),
        ("time", 11, "int64"),
        ("flag", 12, "int64"),
        ("dict", 13, "Dictionary"),
    ),
    "RefreshRequest": (("token", 1, "string"),),
    "RefreshResult": (
        ("client", 1, "string"),
        ("version", 2, "string"),
        ("expires", 3, "bool"),
        ("ttl", 4, "uint32"),
    ),
    "SubscribeRequest": (
        ("channel", 1, "string"),
        ("token", 2, "string"),
        ("recover", 3, "bool"),
        ("epoch", 6, "string"),
        ("offset", 7, "uint64"),
        ("data", 8, "bytes"),
        ("positioned", 9, "bool"),
        ("recoverable", 10, "bool"),
        ("join_leave", 11, "bool"),
        ("delta", 12, "string"),
        ("tf", 13, "FilterNode"),
        ("flag", 14, "int64"),
        ("type", 15, "int32"),
        ("phase", 16, "int32"),
        ("cursor", 17, "string"),
        ("limit", 18, "int32"),
        ("asc", 19, "bool"),
    ),
    "SubscribeResult": (
        ("expires", 1, "bool"),
        ("ttl", 2, "uint32"),
        ("recoverable", 3, "bool"),
        ("epoch", 6, "string"),
        ("publications", 7, "repeated Publication"),
        ("recovered", 8, "bool"),
        ("offset", 9, "uint64"),
        ("positioned", 10, "bool"),
        ("data", 11, "bytes"),
        ("was_recovering", 12, "bool"),
        ("delta", 13, "bool"),
        ("id", 14, "int64"),
        ("type", 15, "int32"),
        ("phase", 16, "int32"),
        ("cursor", 17, "string"),
        ("state", 18, "repeated Publication"),
        ("publish_debounce", 19, "uint32"),
    ),
    "KeyedItem": (("key", 1, "string"), ("version", 2, "uint64")),
    "TrackBatch": (("signature", 1, "string"), ("items", 2, "repeated KeyedItem")),
    "SubRefreshRequest": (
        ("channel", 1, "string"),
        ("token", 2, "string"),
        ("type", 3, "int32"),
        ("track", 4, "repeated TrackBatch"),
        ("untrack", 5, "repeated string"),
    ),
    "SubRefreshResult": (
        ("expires", 1, "bool"),
        ("ttl", 2, "uint32"),
        ("items", 3, "repeated Publication"),
    ),
    "UnsubscribeRequest": (("channel", 1, "string"),),
    "UnsubscribeResult": (),
    "PublishRequest": (
        ("channel", 1, "string"),
        ("data", 2, "bytes"),
        ("type", 3, "int32"),
        ("key", 4, "string"),
        ("removed", 5, "bool"),
    ),
    "PublishResult": (),
    "PresenceRequest": (("channel", 1, "string"),),
    "PresenceResult": (("presence", 1, "map<string, ClientInfo>"),),
    "PresenceStatsRequest": (("channel", 1, "string"),),
    "PresenceStatsResult": (("num_clients", 1, "uint32"), ("num_users", 2, "uint32")),
    "StreamPosition": (("offset", 1, "uint64"), ("epoch", 2, "string")),
    "HistoryRequest": (
        ("channel", 1, "string"),
        ("limit", 7, "int32"),
        ("since", 8, "StreamPosition"),
        ("reverse", 9, "bool"),
    ),
    "HistoryResult": (
        ("publications", 1, "repeated Publication"),
        ("epoch", 2, "string"),
        ("offset", 3, "uint64"),
    ),
    "PingRequest": (),
    "PingResult": (),
    "RPCRequest": (("data", 1, "bytes"), ("method", 2, "string")),
    "RPCResult": (("data", 1, "bytes"),),
    "SendRequest": (("data", 1, "bytes"),),
    "FilterNode": (
        ("op", 1, "string"),
        ("key", 2, "string"),
        ("cmp", 3, "string"),
        ("val", 4, "string"),
        ("vals", 5, "repeated string"),
        ("nodes", 6, "repeated FilterNode"),
    ),
}
"""Every message by name: its fields as ``(name, number, type)``."""

_FieldProto = descriptor_pb2.FieldDescriptorProto
_SCALARS: Final = {
    "string": _FieldProto.TYPE_STRING,
    "bytes": _FieldProto.TYPE_BYTES,
    "bool": _FieldProto.TYPE_BOOL,
    "int32": _FieldProto.TYPE_INT32,
    "uint32": _FieldProto.TYPE_UINT32,
    "int64": _FieldProto.TYPE_INT64,
    "uint64": _FieldProto.TYPE_UINT64,
    "sint64": _FieldProto.TYPE_SINT64,
}


def _set_type(field: descriptor_pb2.FieldDescriptorProto, name: str) -> None:
    scalar = _SCALARS.get(name)
    if scalar is not None:
        field.type = scalar
    elif name in SCHEMA:
        field.type = _FieldProto.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{name}"
    else:
        raise ValueError(f"unknown type {name!r} in the protobuf schema")


def _add_field(
    message: descriptor_pb2.DescriptorProto, name: str, number: int, kind: str, owner: str
) -> None:
    field = message.field.add(name=name, number=number, json_name=name)
    field.label = _FieldProto.LABEL_OPTIONAL
    if kind.startswith("repeated "):
        field.label = _FieldProto.LABEL_REPEATED
        _set_type(field, kind.removeprefix("repeated "))
    elif kind.startswith("map<"):
        key, value = (part.strip() for part in kind[4:-1].split(","))
        entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        for entry_field, number_in_entry, entry_kind in (("key", 1, key), ("value", 2, value)):
            _add_field(entry, entry_field, number_in_entry, entry_kind, owner)
        field.label = _FieldProto.LABEL_REPEATED
        field.type = _FieldProto.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{owner}.{entry_name}"
    else:
        _set_type(field, kind)


def _file() -> descriptor_pb2.FileDescriptorProto:
    """The schema as the descriptor a ``.proto`` file with these messages compiles to."""
    file = descriptor_pb2.FileDescriptorProto(
        name="roomcast/centrifuge_client.proto", package=PACKAGE, syntax="proto3"
    )
    for message_name, fields in SCHEMA.items():
        message = file.message_type.add(name=message_name)
        for name, number, kind in fields:
            _add_field(message, name, number, kind, message_name)
    return file


@cache
def message_classes() -> dict[str, type[Any]]:
    """The message class of every message in :data:`SCHEMA`, by name; built once.

    The pool is private to roomcast, so these names never clash with another copy of the same
    protocol loaded in the process (an SDK's generated module, say).
    """
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in SCHEMA
    }
