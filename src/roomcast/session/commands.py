"""The commands of a connected client, besides connect and refresh, each returning its outcome.

:class:`Commands` serves one connection: subscribe (a token's verdict or the namespace's rules,
then :class:`~roomcast.session.subscriptions.Subscriptions`), unsubscribe, sub_refresh,
publish, presence, presence_stats, history (read through :mod:`roomcast.session.channel_reads`,
as the server API reads them), rpc and send. It is given the hub's services and the
connection's subscriptions when made, and who the client is with each command, as the
``ClientContext`` hooks see.

No handler writes anything: each returns an :data:`~roomcast.session.outcome.Outcome`, which
the session's dispatcher alone turns into the reply or the disconnect. A subscribe returns
``ReplyThen``, so that what the subscription kept aside reaches the client only after the
reply. Errors a hook raises (``ClientError``) and engine failures are left to the dispatcher.

Payloads: a JSON client's are JSON, and hooks get them decoded. A Protobuf client's are bytes:
those that are JSON are taken as JSON, exactly as a JSON client's (:func:`decoded_payload`);
others reach hooks as ``bytes``, and a publication of them is a binary one
(:func:`roomcast.wire.binary_publication`), which Protobuf subscribers receive as the same
bytes and JSON subscribers as base64.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import msgspec
from pydantic import TypeAdapter, ValidationError

from roomcast import protocol
from roomcast.protocol import Disconnect, Error, ErrorCode
from roomcast.publication import ClientInfo, Publication, StreamPosition
from roomcast.session.channel_reads import read_history, read_presence, read_presence_stats
from roomcast.session.hooks import ClientContext, SubscribeReply
from roomcast.session.namespaces import ResolvedChannel, history_options
from roomcast.session.outcome import Outcome, ReplyThen
from roomcast.session.permissions import can_publish, can_read, can_subscribe_without_token
from roomcast.session.services import ChannelServices
from roomcast.session.subscribe_terms import check_subscribe
from roomcast.session.subscriptions import Entered, Subscriptions
from roomcast.session.tokens import SUB_REFRESH_TOKEN, SUBSCRIBE_TOKEN, announced_ttl, token_verdict
from roomcast.wire import binary_publication, wire_format_for

__all__ = ["Commands", "decoded_payload"]

_UNKNOWN_CHANNEL = Error.of(ErrorCode.UNKNOWN_CHANNEL)
_PERMISSION_DENIED = Error.of(ErrorCode.PERMISSION_DENIED)
_NAME_REFUSED = Error.of(
    ErrorCode.BAD_REQUEST, "invalid channel name: it does not match the namespace's channel_regex"
)
_UNSUBSCRIBED = protocol.UnsubscribeResult()
_PUBLISHED = protocol.PublishResult()


class Commands:
    """One connection's command handlers; see the module docstring.

    Args:
        services: what every session of the hub shares.
        subscriptions: the connection's subscriptions, which subscribe, unsubscribe and
            sub_refresh change and the permission checks read.
        codec: the encoding the connection speaks (its payloads and replies take it).
    """

    def __init__(
        self,
        services: ChannelServices,
        subscriptions: Subscriptions,
        codec: protocol.ClientCodec = protocol.JSON,
    ) -> None:
        self._services = services
        self._subscriptions = subscriptions
        self._codec = codec
        self._wire_format = wire_format_for(codec)

    # --- subscriptions ------------------------------------------------------------------------

    async def subscribe(self, who: ClientContext, request: protocol.SubscribeRequest) -> Outcome:
        """Subscribe with a subscription token, or as the hook or the namespace allows; the
        reply, then the subscription goes live.

        Errors: 102 unknown channel, 107 a name the namespace's ``channel_regex`` refuses or
        an option refused (:func:`~roomcast.session.subscribe_terms.check_subscribe`), 105
        already subscribed, 106 channel limit, 103 not allowed, 112 an unrecoverable position
        the client asked to be told of, and the token verdicts of
        :data:`~roomcast.session.tokens.SUBSCRIBE_TOKEN`. An ``on_subscribe`` hook may allow
        with a ``SubscribeReply`` (data for the reply, options of its own).
        """
        channel = request.channel
        resolved = self._services.channels.resolve(channel)
        if resolved is None:
            return _UNKNOWN_CHANNEL
        if self._services.channels.name_refused(resolved):
            return _NAME_REFUSED
        subscriptions = self._subscriptions
        if channel in subscriptions:
            return Error.of(ErrorCode.ALREADY_SUBSCRIBED)
        if subscriptions.full:
            return Error.of(ErrorCode.LIMIT_EXCEEDED)
        terms = check_subscribe(request, resolved.options)
        if isinstance(terms, Error):
            return terms
        chan_info, expire_at = b"", 0
        granted: SubscribeReply | None = None
        if request.token:
            verified = self._services.subscription_tokens.verify_subscription(request.token)
            token = token_verdict(
                verified, SUBSCRIBE_TOKEN, user=who.user, channel=channel, client=who.client
            )
            if isinstance(token, Error | Disconnect):
                return token
            chan_info, expire_at = token.info, token.expire_at
        else:
            verdict = await self._may_subscribe(who, resolved)
            if verdict is False:
                return _PERMISSION_DENIED
            if isinstance(verdict, SubscribeReply):
                granted = verdict
        entered = await subscriptions.enter(
            who,
            channel,
            request=request,
            terms=terms,
            chan_info=chan_info,
            expire_at=expire_at,
            granted=granted,
        )
        if not isinstance(entered, Entered):
            return entered
        return ReplyThen(entered.result, partial(subscriptions.activate, entered))

    async def unsubscribe(self, request: protocol.UnsubscribeRequest) -> Outcome:
        """Leave the channel; replied alike whether or not the client was subscribed."""
        await self._subscriptions.leave(request.channel)
        return _UNSUBSCRIBED

    def sub_refresh(self, who: ClientContext, request: protocol.SubRefreshRequest) -> Outcome:
        """Extend a subscription with a fresh subscription token (error 103 for a channel the
        client is not subscribed to, 107 for the shared-poll fields; the token verdicts of
        :data:`~roomcast.session.tokens.SUB_REFRESH_TOKEN`)."""
        unserved = protocol.unserved_fields(request)
        if unserved:
            return _unserved("sub_refresh", unserved)
        subscription = self._subscriptions.get(request.channel)
        if subscription is None:
            return _PERMISSION_DENIED
        verified = self._services.subscription_tokens.verify_subscription(request.token)
        token = token_verdict(verified, SUB_REFRESH_TOKEN, user=who.user, channel=request.channel)
        if isinstance(token, Error | Disconnect):
            return token
        self._subscriptions.refresh(subscription, expire_at=token.expire_at, chan_info=token.info)
        expires = bool(token.expire_at)
        return protocol.SubRefreshResult(
            expires=expires, ttl=announced_ttl(token.expire_at) if expires else 0
        )

    # --- publish ------------------------------------------------------------------------------

    async def publish(self, who: ClientContext, request: protocol.PublishRequest) -> Outcome:
        """Publish into a channel as the hook or the namespace allows (103 if not), after the
        namespace's publication model, if any, accepted the data (107 naming the field).
        107 too for a name the namespace's ``channel_regex`` refuses and for a map publish."""
        channel = request.channel
        resolved = self._services.channels.resolve(channel)
        if resolved is None:
            return _UNKNOWN_CHANNEL
        if self._services.channels.name_refused(resolved):
            return _NAME_REFUSED
        unserved = protocol.unserved_fields(request)
        if unserved:
            return _unserved("publish", unserved)
        data = bytes(request.data) if request.data else b"null"
        value = decoded_payload(data)
        publication = Publication(data=data)
        if isinstance(value, bytes):  # a Protobuf client's bytes that are not JSON
            publication = binary_publication(data)
        if not await self._may_publish(who, resolved, value):
            return _PERMISSION_DENIED
        model = self._services.hooks.publication_models.get(resolved.namespace)
        if model is not None:
            problem = _validation_problem(model, publication.data)
            if problem is not None:
                return Error.of(ErrorCode.BAD_REQUEST, problem)
        subscription = self._subscriptions.get(channel)
        info = ClientInfo(
            user=who.user,
            client=who.client,
            conn_info=who.info,
            chan_info=subscription.info.chan_info if subscription else b"",
        )
        await self._services.node.publish(
            channel,
            replace(publication, info=info),
            history=history_options(resolved.options),
        )
        return _PUBLISHED

    # --- presence and history -----------------------------------------------------------------

    async def presence(self, who: ClientContext, request: protocol.PresenceRequest) -> Outcome:
        """Who is in a channel the client may read the presence of."""
        readable = self._readable(who, request.channel, "presence")
        if isinstance(readable, Error):
            return readable
        return await read_presence(self._services.presence, readable)

    async def presence_stats(
        self, who: ClientContext, request: protocol.PresenceStatsRequest
    ) -> Outcome:
        """How many clients and users are in a channel the client may read the presence of."""
        readable = self._readable(who, request.channel, "presence")
        if isinstance(readable, Error):
            return readable
        return await read_presence_stats(self._services.presence, readable)

    async def history(self, who: ClientContext, request: protocol.HistoryRequest) -> Outcome:
        """Publications kept for a channel the client may read the history of."""
        readable = self._readable(who, request.channel, "history")
        if isinstance(readable, Error):
            return readable
        since = request.since
        return await read_history(
            self._services.node.history,
            readable,
            since=None if since is None else StreamPosition(since.offset, since.epoch),
            limit=request.limit,
            reverse=request.reverse,
            wire_format=self._wire_format,
        )

    # --- the app's own commands ------------------------------------------------------------------

    async def rpc(self, who: ClientContext, request: protocol.RPCRequest) -> Outcome:
        """The result of the app's handler for the method (error 104 if it has none)."""
        handler = self._services.hooks.rpc.get(request.method)
        if handler is None:
            return Error.of(ErrorCode.METHOD_NOT_FOUND)
        result = await handler(who, decoded_payload(request.data))
        if isinstance(result, bytes) and self._codec.binary:
            return protocol.RPCResult(data=protocol.raw(result))
        return protocol.RPCResult(data=protocol.raw(msgspec.json.encode(result)))

    async def send(self, who: ClientContext, request: protocol.SendRequest) -> Outcome:
        """Hand the data to the app's message handler, if any; nothing is replied."""
        handler = self._services.hooks.message
        if handler is not None:
            await handler(who, decoded_payload(request.data))
        return None

    # --- checks -------------------------------------------------------------------------------

    async def _may_subscribe(
        self, who: ClientContext, resolved: ResolvedChannel
    ) -> bool | SubscribeReply:
        """The app's ``on_subscribe`` verdict if it has one, else the namespace's.

        Raises:
            TypeError: the hook answered neither a bool nor a ``SubscribeReply``.
        """
        hook = self._services.hooks.subscribe
        if hook is not None:
            verdict = await hook(who, resolved.name)
            if not isinstance(verdict, bool | SubscribeReply):
                raise TypeError(
                    f"on_subscribe must return a bool or a SubscribeReply, not {verdict!r}"
                )
            return verdict
        rules = self._services.channels
        if rules.is_private(resolved.name):
            return False
        return can_subscribe_without_token(
            resolved, rules, user=who.user, insecure=self._services.settings.client.insecure
        )

    async def _may_publish(self, who: ClientContext, resolved: ResolvedChannel, value: Any) -> bool:
        hook = self._services.hooks.publish
        if hook is not None:
            return await hook(who, resolved.name, value)
        return can_publish(
            resolved.options,
            user=who.user,
            subscribed=resolved.name in self._subscriptions,
            insecure=self._services.settings.client.insecure,
        )

    def _readable(self, who: ClientContext, channel: str, what: str) -> ResolvedChannel | Error:
        """The channel if the client may read its ``what``; else 102, 107 (a name the
        namespace's ``channel_regex`` refuses) or 103."""
        resolved = self._services.channels.resolve(channel)
        if resolved is None:
            return _UNKNOWN_CHANNEL
        if self._services.channels.name_refused(resolved):
            return _NAME_REFUSED
        allowed = can_read(
            resolved.options,
            what,
            user=who.user,
            subscribed=channel in self._subscriptions,
            insecure=self._services.settings.client.insecure,
        )
        return resolved if allowed else _PERMISSION_DENIED


def decoded_payload(data: bytes | msgspec.Raw) -> Any:
    """A client's payload as hooks get it: None when empty, the decoded JSON, or, for bytes
    that are not JSON (only a Protobuf client can send those), the bytes themselves."""
    if not data:
        return None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return bytes(data)


def _unserved(method: str, fields: list[str]) -> Error:
    return Error.of(
        ErrorCode.BAD_REQUEST,
        f"{method}: map and shared-poll subscriptions are not served: "
        f"{', '.join(fields)} not supported",
    )


_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(model: type[Any]) -> TypeAdapter[Any]:
    adapter = _adapters.get(model)
    if adapter is None:
        adapter = _adapters[model] = TypeAdapter(model)
    return adapter


def _validation_problem(model: type[Any], data: bytes) -> str | None:
    """Why ``data`` is not a valid ``model``, naming the first invalid field; None if valid."""
    try:
        _adapter(model).validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "data"
        return f"invalid publication: {location}: {first['msg']}"
    return None
