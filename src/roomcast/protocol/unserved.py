"""The parts of the client protocol roomcast decodes but does not serve, so that a client
using one is told which instead of being ignored.

They are map and shared-poll subscriptions: subscribe ``type`` / ``phase`` / ``cursor`` /
``limit`` / ``asc``, publish ``type`` / ``key`` / ``removed``, and sub_refresh ``type`` /
``track`` / ``untrack``. :func:`unserved_fields` names those a request sets; the session
answers such a command with error 107 (bad request) naming them.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .messages import PublishRequest, Request, SubRefreshRequest, SubscribeRequest

__all__ = ["UNSERVED_FIELDS", "unserved_fields"]

UNSERVED_FIELDS: Final[dict[type[msgspec.Struct], tuple[str, ...]]] = {
    SubscribeRequest: ("type", "phase", "cursor", "limit", "asc"),
    PublishRequest: ("type", "key", "removed"),
    SubRefreshRequest: ("type", "track", "untrack"),
}
"""Request type -> the fields of it roomcast does not serve."""


def _default(field: msgspec.structs.FieldInfo) -> object:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    return field.default_factory()  # a list: msgspec keeps mutable defaults as factories


_DEFAULTS: Final = {
    kind: {
        field.name: _default(field) for field in msgspec.structs.fields(kind) if field.name in names
    }
    for kind, names in UNSERVED_FIELDS.items()
}


def unserved_fields(request: Request) -> list[str]:
    """The wire names of the unserved fields ``request`` sets to anything but their default,
    in declaration order; empty for a request roomcast serves whole."""
    names = UNSERVED_FIELDS.get(type(request), ())
    if not names:
        return []
    defaults = _DEFAULTS[type(request)]
    return [name for name in names if getattr(request, name) != defaults[name]]
