"""Channel names: which namespace a channel belongs to and who may use it.

``chat:room1`` is channel ``room1``'s form in namespace ``chat``; a channel without the
boundary belongs to no namespace. ``dialog#42,43`` is user-limited: only users 42 and 43 may
subscribe, when the namespace allows user-limited channels. A namespace's ``channel_regex``
says which names (after ``chat:``; the whole name without a namespace) its channels may have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from roomcast.engines.base import HistoryOptions
from roomcast.settings import ChannelOptions, ChannelSettings

__all__ = ["ChannelRules", "ResolvedChannel", "history_options", "keeps_history"]


def keeps_history(settings: ChannelSettings) -> bool:
    """Whether any namespace (or the channels without one) keeps history."""
    return any(
        history_options(options) is not None
        for options in (settings.without_namespace, *settings.namespaces)
    )


def history_options(options: ChannelOptions) -> HistoryOptions | None:
    """How a namespace keeps history; None when its channels keep none."""
    if options.history_size <= 0 or options.history_ttl <= 0:
        return None
    return HistoryOptions(
        size=options.history_size, ttl=options.history_ttl, meta_ttl=options.history_meta_ttl
    )


@dataclass(frozen=True, slots=True)
class ResolvedChannel:
    """A channel name with its namespace's options."""

    name: str
    namespace: str
    options: ChannelOptions


class ChannelRules:
    """Resolves channel names against configured namespaces."""

    def __init__(self, settings: ChannelSettings) -> None:
        self._settings = settings
        self._namespaces: dict[str, ChannelOptions] = {ns.name: ns for ns in settings.namespaces}
        self._regexes: dict[str, re.Pattern[str]] = {
            name: re.compile(options.channel_regex)
            for name, options in (("", settings.without_namespace), *self._namespaces.items())
            if options.channel_regex
        }

    def resolve(self, channel: str) -> ResolvedChannel | None:
        """The channel's namespace options; None for an invalid name or an unknown namespace."""
        if not channel or len(channel) > self._settings.max_length:
            return None
        bare = channel.removeprefix(self._settings.private_prefix)
        namespace, boundary, _ = bare.partition(self._settings.namespace_boundary)
        if not boundary:
            return ResolvedChannel(channel, "", self._settings.without_namespace)
        options = self._namespaces.get(namespace)
        if options is None:
            return None
        return ResolvedChannel(channel, namespace, options)

    def name_refused(self, resolved: ResolvedChannel) -> bool:
        """Whether the namespace's ``channel_regex`` refuses the channel's name: the part after
        ``<namespace>:``, or the whole name for a channel without a namespace, as Centrifugo
        reads it. The regex may match anywhere in it (Go's ``MatchString``), unless anchored."""
        regex = self._regexes.get(resolved.namespace)
        if regex is None:
            return False
        if resolved.namespace:
            bare = resolved.name.removeprefix(self._settings.private_prefix)
            name = bare.partition(self._settings.namespace_boundary)[2]
        else:
            name = resolved.name
        return regex.search(name) is None

    def is_user_limited(self, channel: str) -> bool:
        """Whether the name lists its allowed users after the user boundary."""
        return self._settings.user_boundary in channel

    def user_allowed(self, channel: str, user: str) -> bool:
        """Whether ``user`` is one of the users a user-limited channel names."""
        _, _, users = channel.rpartition(self._settings.user_boundary)
        return bool(user) and user in users.split(self._settings.user_separator)

    def is_private(self, channel: str) -> bool:
        """Whether subscribing needs a subscription token (the name starts with ``$``)."""
        prefix = self._settings.private_prefix
        return bool(prefix) and channel.startswith(prefix)
