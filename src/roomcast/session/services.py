"""What the channel side of every session of one hub shares: settings, node, rules, stores.

A session's :class:`~roomcast.session.subscriptions.Subscriptions` and its
:class:`~roomcast.session.commands.Commands` take this and nothing of the session itself. The
connection adds what only it needs (its connection tokens and the registry it enters) in
:class:`~roomcast.session.connection.SessionServices`, which is one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

from roomcast.engines.base import PresenceStore
from roomcast.node import Node
from roomcast.session.hooks import Hooks
from roomcast.session.namespaces import ChannelRules
from roomcast.session.tokens import TokenVerifier
from roomcast.settings import Settings

__all__ = ["ChannelServices"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelServices:
    """What subscriptions and commands use, one instance for every session of a hub."""

    settings: Settings
    node: Node
    """Fans publications out; holds the history store (``node.history``) if any namespace
    keeps history."""
    subscription_tokens: TokenVerifier
    channels: ChannelRules
    hooks: Hooks
    presence: PresenceStore | None = None
