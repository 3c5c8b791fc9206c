"""What a client's subscribe asks for beyond the channel, each option honoured or refused.

Every field of a ``SubscribeRequest`` is either served, or answered so that the client knows
it was not:

* ``tf`` (tags filter): compiled into a :class:`~roomcast.session.tags_filter.TagsFilter`
  where the namespace has ``allow_tags_filter``; error 107 where it has not, or for a tree
  that is not valid.
* ``flag``: :attr:`~roomcast.protocol.SubscribeFlag.REJECT_UNRECOVERED` is served (a recovery
  that fails is error 112); :attr:`~roomcast.protocol.SubscribeFlag.CHANNEL_COMPACTION` is an
  offer the reply declines by carrying no ``id``, as the protocol provides; any other bit is
  error 107.
* ``delta``: ``"fossil"`` is served where the namespace lists it in ``allowed_delta_types`` and
  publishes deltas (``delta_publish``): the reply carries ``delta`` and publications may come as
  fossil deltas. Elsewhere it is declined the protocol's way, by a reply without ``delta``, so
  the SDKs go on with whole publications. Any other type is error 107, and so is ``delta`` with
  a tags filter (the SDKs refuse the pair too: a filtered stream has no previous publication
  both sides agree on).
* ``data``: no hook reads a subscribe's data, so it is error 107 rather than dropped.
* the map and shared-poll fields (:mod:`roomcast.protocol.unserved`): error 107 naming them.

The same checks serve the ``subs`` of a connect (server-side subscriptions to recover), where
only ``recover``, ``offset``, ``epoch`` and ``delta`` mean anything: :func:`check_resume`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from roomcast import protocol
from roomcast.protocol import Error, ErrorCode, SubscribeFlag
from roomcast.session.tags_filter import TagsFilter, compile_tags_filter
from roomcast.settings import ChannelOptions

__all__ = ["DELTA_TYPES", "SubscribeTerms", "check_resume", "check_subscribe", "delta_served"]

DELTA_TYPES: Final = frozenset({"fossil"})
"""Delta types the SDKs know: served where the namespace allows them, else declined."""

# An int: the complement of an IntFlag keeps only the flag's own bits.
_KNOWN_FLAGS: Final = int(SubscribeFlag.CHANNEL_COMPACTION | SubscribeFlag.REJECT_UNRECOVERED)
_RESUME_FIELDS: Final = frozenset({"recover", "offset", "epoch", "delta"})


@dataclass(frozen=True, slots=True)
class SubscribeTerms:
    """The options of an accepted subscribe that change how it is served."""

    tags_filter: TagsFilter | None = None
    """Only publications it matches reach the client."""
    reject_unrecovered: bool = False
    """A recovery that cannot be made is error 112, not ``recovered: false``."""
    delta: bool = False
    """Publications may go as fossil deltas (the reply says ``delta``)."""


NO_TERMS: Final = SubscribeTerms()


def _bad(message: str) -> Error:
    return Error.of(ErrorCode.BAD_REQUEST, message)


def check_subscribe(
    request: protocol.SubscribeRequest, options: ChannelOptions
) -> SubscribeTerms | Error:
    """The terms of ``request`` in a namespace with ``options``, or error 107 naming the first
    option that is refused."""
    unserved = protocol.unserved_fields(request)
    if unserved:
        return _bad(
            "subscribe: map and shared-poll subscriptions are not served: "
            f"{', '.join(unserved)} not supported"
        )
    if request.data:
        return _bad("subscribe data is not supported: nothing on this server reads it")
    delta_refused = _delta_problem(request.delta)
    if delta_refused is not None:
        return delta_refused
    if request.delta and request.tf is not None:
        return _bad("delta and a tags filter cannot be used together")
    unknown_flags = request.flag & ~_KNOWN_FLAGS
    if unknown_flags:
        return _bad(f"unknown subscribe flag bits {unknown_flags:#x}")
    tags_filter: TagsFilter | None = None
    if request.tf is not None:
        if not options.allow_tags_filter:
            return _bad("tags filter not allowed in this namespace (allow_tags_filter is off)")
        compiled = compile_tags_filter(request.tf)
        if isinstance(compiled, Error):
            return compiled
        tags_filter = compiled
    reject = bool(request.flag & SubscribeFlag.REJECT_UNRECOVERED)
    delta = delta_served(request.delta, options)
    if tags_filter is None and not reject and not delta:
        return NO_TERMS
    return SubscribeTerms(tags_filter=tags_filter, reject_unrecovered=reject, delta=delta)


def delta_served(delta: str, options: ChannelOptions) -> bool:
    """Whether a subscribe asking for ``delta`` (a type of :data:`DELTA_TYPES`, or empty) in a
    namespace with ``options`` gets it: the type is allowed and the namespace publishes
    deltas."""
    return bool(delta) and options.delta_publish and delta in options.allowed_delta_types


def check_resume(channel: str, request: protocol.SubscribeRequest) -> Error | None:
    """Error 107 when a connect's ``subs[channel]`` sets more than ``recover``, ``offset``,
    ``epoch`` and a known ``delta``: a server-side subscription takes its other options from
    the namespace, so anything else would be ignored."""
    given = [
        name
        for name in request.__struct_fields__
        if name not in _RESUME_FIELDS and getattr(request, name) != _DEFAULTS[name]
    ]
    if given:
        return _bad(f"connect subs[{channel!r}]: {', '.join(given)} not supported there")
    return _delta_problem(request.delta)


_DEFAULTS: Final = {
    name: getattr(protocol.SubscribeRequest(), name)
    for name in protocol.SubscribeRequest.__struct_fields__
}


def _delta_problem(delta: str) -> Error | None:
    if not delta or delta in DELTA_TYPES:
        return None
    return _bad(f"unknown delta type {delta!r}")
