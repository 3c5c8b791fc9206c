"""What a subscription does besides delivering: its features, as the namespace, the client's
request, the app's ``on_subscribe`` answer and the server API's override decide them.

Pure functions of their arguments, so every way into a subscription (a client's subscribe, a
token's ``channels``, the server API, a hook) decides the same way.
"""

from __future__ import annotations

from dataclasses import replace

from roomcast import protocol
from roomcast.errors import ConfigurationError
from roomcast.session.hooks import SubscribeReply
from roomcast.session.namespaces import history_options
from roomcast.session.permissions import can_read
from roomcast.session.subscription import SubscriptionFeatures
from roomcast.settings import ChannelOptions

__all__ = ["OVERRIDABLE", "overridden", "subscription_features"]

OVERRIDABLE = frozenset(
    {"presence", "join_leave", "force_push_join_leave", "force_positioning", "force_recovery"}
)
"""The namespace options a server-side subscribe may override (Centrifugo's
``SubscribeOptionOverride``)."""


def subscription_features(
    options: ChannelOptions,
    request: protocol.SubscribeRequest | None,
    user: str,
    *,
    insecure: bool,
) -> SubscriptionFeatures:
    """What a subscription to a channel with ``options`` does, as Centrifugo decides it:
    the namespace forces a feature, or allows what the client asked for."""
    has_history = history_options(options) is not None
    history_access = can_read(options, "history", user=user, subscribed=True, insecure=insecure)
    presence_access = can_read(options, "presence", user=user, subscribed=True, insecure=insecure)
    asked_recovery = request is not None and (request.recoverable or request.recover)
    asked_position = request is not None and request.positioned
    recoverable = has_history and (
        options.force_recovery or (asked_recovery and (options.allow_recovery or history_access))
    )
    positioned = recoverable or (
        has_history
        and (
            options.force_positioning
            or (asked_position and (options.allow_positioning or history_access))
        )
    )
    join_leave = options.join_leave and (
        options.force_push_join_leave
        or (request is not None and request.join_leave and presence_access)
    )
    return SubscriptionFeatures(
        positioned=positioned,
        recoverable=recoverable,
        join_leave=join_leave,
        emit_join_leave=options.join_leave,
        presence=options.presence,
    )


def overridden(
    features: SubscriptionFeatures, granted: SubscribeReply, options: ChannelOptions, channel: str
) -> SubscriptionFeatures:
    """``features`` with what the app's ``SubscribeReply`` decided instead.

    Raises:
        ConfigurationError: it asks for recovery or positioning on a channel without history.
    """
    wants_position = granted.recovery or granted.positioning
    if wants_position and history_options(options) is None:
        raise ConfigurationError(
            f"on_subscribe asked for recovery or positioning in {channel!r}, whose namespace "
            "keeps no history (history_size and history_ttl)"
        )
    recoverable = features.recoverable if granted.recovery is None else granted.recovery
    positioned = recoverable or (
        features.positioned if granted.positioning is None else granted.positioning
    )
    return replace(
        features,
        recoverable=recoverable,
        positioned=positioned,
        presence=features.presence if granted.presence is None else granted.presence,
        emit_join_leave=(
            features.emit_join_leave if granted.join_leave is None else granted.join_leave
        ),
        join_leave=(
            features.join_leave if granted.push_join_leave is None else granted.push_join_leave
        ),
    )
