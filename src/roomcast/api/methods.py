"""The server API's methods: each validates its request the way Centrifugo does, then calls the Hub.

A method returns its result or an :class:`ApiError`, never raises for a caller's mistake.
Engine failures (``RoomcastError``) are turned into error 100 by :func:`call`, the one entry
point that routes and batches use.

``history``, ``presence`` and ``presence_stats`` read through the session layer's readers
(:mod:`roomcast.session.channel_reads`), exactly as a client's commands of the same names do,
and answer with the same result bodies; a reader's ``Error`` becomes an ``ApiError`` with its
code.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

import msgspec

from roomcast.api.glob import compile_glob
from roomcast.api.schemas import (
    ApiError,
    BroadcastRequest,
    BroadcastResult,
    ChannelInfo,
    ChannelRequest,
    ChannelsRequest,
    ChannelsResult,
    DisconnectRequest,
    EmptyRequest,
    EmptyResult,
    HistoryRequest,
    InfoResult,
    PublishRequest,
    PublishResponse,
    PublishResult,
    RefreshRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from roomcast.errors import EngineUnavailable, RoomcastError
from roomcast.hub import Hub
from roomcast.metrics import API_COMMAND_DURATION
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode
from roomcast.publication import StreamPosition
from roomcast.session import (
    ResolvedChannel,
    read_history,
    read_presence,
    read_presence_stats,
)
from roomcast.wire import BASE64, BINARY_TAG, binary_publication

__all__ = ["CONCURRENCY", "METHODS", "ApiMethod", "Outcome", "call", "gather_bounded"]

logger = logging.getLogger("roomcast.api")

CONCURRENCY = 1024
"""Most publishes (broadcast) or commands (parallel batch) in flight at once, as in Centrifugo."""

Outcome: TypeAlias = msgspec.Struct | ApiError
"""What a method returns: its result struct, or an error."""

Req = TypeVar("Req", bound=msgspec.Struct)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ApiMethod(Generic[Req]):
    """One API method: the type its body decodes into and the coroutine that serves it,
    which is named after the method (the name labels the method's duration metric)."""

    request: type[Req]
    serve: Callable[[Hub, Req], Awaitable[Outcome]]


async def call(hub: Hub, method: ApiMethod[Any], request: msgspec.Struct) -> Outcome:
    """Run ``method`` with its decoded ``request``; engine failures become error 100. Its
    duration is observed in ``roomcast_api_command_duration_seconds``."""
    started = time.perf_counter()
    try:
        return await method.serve(hub, request)
    except RoomcastError as exc:
        return _engine_error(exc)
    finally:
        API_COMMAND_DURATION.labels(method.serve.__name__).observe(time.perf_counter() - started)


def _engine_error(exc: RoomcastError) -> ApiError:
    if isinstance(exc, EngineUnavailable):
        logger.warning("server API: engine unavailable: %s", exc)
        return ApiError.of(ErrorCode.INTERNAL, f"engine unavailable, retry later ({exc})")
    logger.error("server API: %s", exc)
    return ApiError.of(ErrorCode.INTERNAL, str(exc))


async def gather_bounded(coroutines: Iterable[Awaitable[T]], limit: int = CONCURRENCY) -> list[T]:
    """Await ``coroutines`` concurrently, at most ``limit`` at a time; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def bounded(coroutine: Awaitable[T]) -> T:
        async with semaphore:
            return await coroutine

    return list(await asyncio.gather(*(bounded(c) for c in coroutines)))


# --- shared checks ------------------------------------------------------------------------------


def _resolve(hub: Hub, channel: str) -> ResolvedChannel | ApiError:
    """The channel with its namespace; 107 for a missing channel, 102 for one outside every
    configured namespace."""
    if not channel:
        return ApiError.of(ErrorCode.BAD_REQUEST, "channel required")
    resolved = hub.services.channels.resolve(channel)
    if resolved is None:
        return ApiError.of(ErrorCode.UNKNOWN_CHANNEL, channel)
    return resolved


def _channel_error(hub: Hub, channel: str) -> ApiError | None:
    """What :func:`_resolve` refuses the channel with, or None."""
    resolved = _resolve(hub, channel)
    return resolved if isinstance(resolved, ApiError) else None


def _target_error(session: str) -> ApiError | None:
    if session:
        return ApiError.of(
            ErrorCode.NOT_AVAILABLE,
            "targeting a session is not supported (roomcast has no unidirectional or emulated "
            "transports, whose connections sessions name)",
        )
    return None


def _json_field(raw: msgspec.Raw, b64: str, name: str) -> bytes | ApiError:
    """The JSON bytes of field ``name`` given as JSON, or as base64 in ``b64<name>`` (which
    must decode to JSON: roomcast's clients speak the JSON protocol); empty when neither."""
    if b64:
        try:
            decoded = base64.b64decode(b64, validate=True)
            msgspec.json.decode(decoded)
        except (binascii.Error, msgspec.DecodeError):
            return ApiError.of(ErrorCode.BAD_REQUEST, f"b64{name} must be base64 of a JSON value")
        return decoded
    return bytes(raw)


@dataclass(frozen=True, slots=True)
class _Payload:
    """A publication's data as JSON bytes, and whether it stands for binary bytes (tagged
    ``BINARY_TAG``: the base64 string JSON clients get, the bytes Protobuf clients get)."""

    data: bytes
    binary: bool = False


def _payload(data: msgspec.Raw, b64data: str) -> _Payload | ApiError:
    """The publication from ``data`` (JSON), or from ``b64data``: JSON it decodes to is
    published as JSON, other bytes as a binary publication."""
    if b64data:
        try:
            decoded = base64.b64decode(b64data, validate=True)
        except binascii.Error:
            return ApiError.of(ErrorCode.BAD_REQUEST, "b64data must be base64")
        try:
            msgspec.json.decode(decoded)
        except msgspec.DecodeError:
            return _Payload(binary_publication(decoded).data, binary=True)
        return _Payload(decoded)
    if not data:
        return ApiError.of(ErrorCode.BAD_REQUEST, "data required")
    return _Payload(bytes(data))


async def _publish_one(
    hub: Hub, channel: str, payload: _Payload, request: PublishRequest | BroadcastRequest
) -> PublishResult | ApiError:
    resolved = _resolve(hub, channel)
    if isinstance(resolved, ApiError):
        return resolved
    if request.delta and not resolved.options.delta_publish:
        return ApiError.of(
            ErrorCode.NOT_AVAILABLE,
            f"delta: {channel}'s namespace does not publish deltas; turn on delta_publish "
            "(and allowed_delta_types) there",
        )
    tags = request.tags
    if payload.binary:
        tags = {**(tags or {}), BINARY_TAG: BASE64}
    try:
        published = await hub.publish(
            channel,
            msgspec.Raw(payload.data),
            tags=tags,
            idempotency_key=request.idempotency_key,
            skip_history=request.skip_history,
            version=request.version,
            version_epoch=request.version_epoch,
        )
    except ValueError as exc:
        return ApiError.of(ErrorCode.BAD_REQUEST, str(exc))
    except RoomcastError as exc:
        return _engine_error(exc)
    reason = published.suppressed
    return PublishResult(
        offset=published.offset,
        epoch=published.epoch,
        suppressed=reason is not None,
        suppress_reason="" if reason is None else reason.value,
    )


# --- methods ------------------------------------------------------------------------------------


async def publish(hub: Hub, request: PublishRequest) -> Outcome:
    """Publish into one channel, once per ``idempotency_key`` within five minutes; the result
    carries the publication's offset and epoch when the channel keeps history, and says when
    a guard (the key, the version) suppressed it."""
    data = _payload(request.data, request.b64data)
    if isinstance(data, ApiError):
        return data
    return await _publish_one(hub, request.channel, data, request)


async def broadcast(hub: Hub, request: BroadcastRequest) -> Outcome:
    """Publish into each channel; a channel's failure is its own response, not the call's."""
    if not request.channels:
        return ApiError.of(ErrorCode.BAD_REQUEST, "channels required")
    data = _payload(request.data, request.b64data)
    if isinstance(data, ApiError):
        return data
    outcomes = await gather_bounded(
        _publish_one(hub, channel, data, request) for channel in request.channels
    )
    return BroadcastResult(
        [
            PublishResponse(error=o) if isinstance(o, ApiError) else PublishResponse(result=o)
            for o in outcomes
        ]
    )


async def subscribe(hub: Hub, request: SubscribeRequest) -> Outcome:
    """Subscribe the user's connections on every node; each gets a subscribe push (with the
    request's ``data``), and the options the request gives."""
    error = _channel_error(hub, request.channel) or _target_error(request.session)
    if error is not None:
        return error
    chan_info = _json_field(request.info, request.b64info, "info")
    if isinstance(chan_info, ApiError):
        return chan_info
    data = _json_field(request.data, request.b64data, "data")
    if isinstance(data, ApiError):
        return data
    since = request.recover_since
    override = request.override
    try:
        await hub.subscribe_user(
            request.user,
            request.channel,
            client=request.client,
            all_users=request.all_users,
            chan_info=chan_info,
            data=data,
            expire_at=request.expire_at,
            recover_since=None if since is None else StreamPosition(since.offset, since.epoch),
            override=None
            if override is None
            else {
                name: value.value
                for name in override.__struct_fields__
                if (value := getattr(override, name)) is not None
            },
        )
    except ValueError as exc:
        return ApiError.of(ErrorCode.BAD_REQUEST, str(exc))
    return EmptyResult()


async def unsubscribe(hub: Hub, request: UnsubscribeRequest) -> Outcome:
    """End the user's subscriptions on every node; each gets an unsubscribe push."""
    error = _channel_error(hub, request.channel) or _target_error(request.session)
    if error is not None:
        return error
    await hub.unsubscribe_user(
        request.user, request.channel, client=request.client, all_users=request.all_users
    )
    return EmptyResult()


async def disconnect(hub: Hub, request: DisconnectRequest) -> Outcome:
    """Close the user's connections on every node with the given (or the default) code."""
    error = _target_error(request.session)
    if error is not None:
        return error
    spec = request.disconnect
    if spec is None or spec.code == 0:
        disconnect = Disconnect.of(DisconnectCode.FORCE_NO_RECONNECT)
    else:
        try:  # checks the code's range and the reason's length
            disconnect = Disconnect(spec.code, spec.reason)
        except ValueError as exc:
            return ApiError.of(ErrorCode.BAD_REQUEST, str(exc))
    await hub.disconnect_user(
        request.user,
        disconnect,
        client=request.client,
        whitelist=frozenset(request.whitelist),
        all_users=request.all_users,
    )
    return EmptyResult()


async def refresh(hub: Hub, request: RefreshRequest) -> Outcome:
    """Refresh the user's connections on every node: expire them now, or at ``expire_at``,
    with new connection info."""
    error = _target_error(request.session)
    if error is not None:
        return error
    try:
        await hub.refresh_user(
            request.user,
            client=request.client,
            all_users=request.all_users,
            expired=request.expired,
            expire_at=request.expire_at,
            conn_info=bytes(request.info),
        )
    except ValueError as exc:
        return ApiError.of(ErrorCode.BAD_REQUEST, str(exc))
    return EmptyResult()


def _not_kept(channel: str, what: str) -> ApiError:
    return ApiError.of(ErrorCode.NOT_AVAILABLE, f"the namespace of {channel!r} keeps no {what}")


def _api_error(error: Error, channel: str, what: str) -> ApiError:
    """A reader's error as the API answers it: the same code; "not available" names the
    namespace that keeps no ``what``."""
    if error.code == ErrorCode.NOT_AVAILABLE:
        return _not_kept(channel, what)
    return ApiError(error.code, error.message)


async def history(hub: Hub, request: HistoryRequest) -> Outcome:
    """Publications kept for a channel, with its stream position (error 112 when ``since`` is
    from another epoch or older than what is kept)."""
    resolved = _resolve(hub, request.channel)
    if isinstance(resolved, ApiError):
        return resolved
    since = request.since
    result = await read_history(
        hub.node.history,
        resolved,
        since=None if since is None else StreamPosition(since.offset, since.epoch),
        limit=request.limit,
        reverse=request.reverse,
    )
    return _api_error(result, request.channel, "history") if isinstance(result, Error) else result


async def history_remove(hub: Hub, request: ChannelRequest) -> Outcome:
    """Forget a channel's history; its next publication starts a new epoch."""
    error = _channel_error(hub, request.channel)
    if error is not None:
        return error
    if not await hub.history_remove(request.channel):
        return _not_kept(request.channel, "history")
    return EmptyResult()


async def presence(hub: Hub, request: ChannelRequest) -> Outcome:
    """Who is subscribed to a channel."""
    resolved = _resolve(hub, request.channel)
    if isinstance(resolved, ApiError):
        return resolved
    result = await read_presence(hub.presence_store, resolved)
    return _api_error(result, request.channel, "presence") if isinstance(result, Error) else result


async def presence_stats(hub: Hub, request: ChannelRequest) -> Outcome:
    """How many clients and distinct users are subscribed to a channel."""
    resolved = _resolve(hub, request.channel)
    if isinstance(resolved, ApiError):
        return resolved
    result = await read_presence_stats(hub.presence_store, resolved)
    return _api_error(result, request.channel, "presence") if isinstance(result, Error) else result


async def channels(hub: Hub, request: ChannelsRequest) -> Outcome:
    """Channels with subscribers on any live node, their counts summed over the nodes,
    optionally filtered by a glob pattern (error 100 when a live node does not answer)."""
    matcher = compile_glob(request.pattern) if request.pattern else None
    if request.pattern and matcher is None:
        return ApiError.of(ErrorCode.BAD_REQUEST, f"invalid pattern {request.pattern!r}")
    return ChannelsResult(
        {
            name: ChannelInfo(count)
            for name, count in (await hub.cluster_channels()).items()
            if count > 0 and (matcher is None or matcher.fullmatch(name))
        }
    )


async def info(hub: Hub, request: EmptyRequest) -> Outcome:
    """Every live node's name, version, uptime and counts, this one first."""
    return InfoResult([msgspec.structs.asdict(node) for node in hub.nodes()])


METHODS: dict[str, ApiMethod[Any]] = {
    "publish": ApiMethod(PublishRequest, publish),
    "broadcast": ApiMethod(BroadcastRequest, broadcast),
    "subscribe": ApiMethod(SubscribeRequest, subscribe),
    "unsubscribe": ApiMethod(UnsubscribeRequest, unsubscribe),
    "disconnect": ApiMethod(DisconnectRequest, disconnect),
    "refresh": ApiMethod(RefreshRequest, refresh),
    "presence": ApiMethod(ChannelRequest, presence),
    "presence_stats": ApiMethod(ChannelRequest, presence_stats),
    "history": ApiMethod(HistoryRequest, history),
    "history_remove": ApiMethod(ChannelRequest, history_remove),
    "channels": ApiMethod(ChannelsRequest, channels),
    "info": ApiMethod(EmptyRequest, info),
}
"""Every method but ``batch`` (which runs these, see :mod:`roomcast.api.routes`), by name."""
