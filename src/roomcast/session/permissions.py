"""Who may do what on a channel, from its namespace options, as Centrifugo decides it.

Each rule is a pure function of the options and the client's facts. ``insecure`` (development
mode) allows everything; anonymous clients (empty user) need the ``*_for_anonymous`` option
besides the one that grants the action.
"""

from __future__ import annotations

from typing import Literal

from roomcast.session.namespaces import ChannelRules, ResolvedChannel
from roomcast.settings import ChannelOptions

__all__ = ["can_publish", "can_read", "can_subscribe_without_token"]


def can_subscribe_without_token(
    resolved: ResolvedChannel, rules: ChannelRules, *, user: str, insecure: bool
) -> bool:
    """Whether a client without a subscription token may subscribe to ``resolved``."""
    options = resolved.options
    user_limited = options.allow_user_limited_channels and rules.is_user_limited(resolved.name)
    if user_limited:
        return rules.user_allowed(resolved.name, user) or insecure
    if options.allow_subscribe_for_client and (user or options.allow_subscribe_for_anonymous):
        return True
    return insecure


def can_publish(options: ChannelOptions, *, user: str, subscribed: bool, insecure: bool) -> bool:
    """Whether a client may publish into a channel with ``options``."""
    identified = bool(user) or options.allow_publish_for_anonymous
    if options.allow_publish_for_subscriber and subscribed and identified:
        return True
    if options.allow_publish_for_client and identified:
        return True
    return insecure


def can_read(
    options: ChannelOptions,
    what: Literal["presence", "history"] | str,
    *,
    user: str,
    subscribed: bool,
    insecure: bool,
) -> bool:
    """Whether a client may read a channel's presence or history."""
    if what == "presence":
        for_subscriber = options.allow_presence_for_subscriber
        for_client = options.allow_presence_for_client
        for_anonymous = options.allow_presence_for_anonymous
    else:
        for_subscriber = options.allow_history_for_subscriber
        for_client = options.allow_history_for_client
        for_anonymous = options.allow_history_for_anonymous
    identified = bool(user) or for_anonymous
    if for_subscriber and subscribed and identified:
        return True
    if for_client and identified:
        return True
    return insecure
