"""The client session: one connection speaking the Centrifuge client protocol.

A :class:`Session` (``connection.py``) is the connection's state machine. It owns the
connection's :class:`Subscriptions` (``subscriptions.py``, each one a ``ChannelSubscription``
the Node delivers to, ``subscription.py``) and serves the other commands through
``commands.py``; every handler returns its outcome (``outcome.py``) and the session's
dispatcher alone writes it. Beside them: channel namespaces (``namespaces.py``), who may do
what (``permissions.py``), tokens and the one verdict on them (``tokens.py``), recovery as a
pure merge (``recovery.py``), history and presence reads shared with the server API
(``channel_reads.py``), the app's hooks (``hooks.py``), the connected clients by client
and user (``registry.py``) and what a cluster command does to this node's sessions
(``actions.py``).

A session never touches a socket: it pushes into its writer, so a test drives it with any
writer. This package exports what the layers above use.
"""

from __future__ import annotations

from roomcast.session.channel_reads import (
    history_store,
    presence_store,
    read_history,
    read_presence,
    read_presence_stats,
)
from roomcast.session.connection import Session, SessionServices, SessionState
from roomcast.session.expiry import RefreshMode
from roomcast.session.features import OVERRIDABLE
from roomcast.session.hooks import (
    ClientContext,
    ConnectDetails,
    ConnectHook,
    ConnectReply,
    Credentials,
    DisconnectHook,
    Hooks,
    MessageHandler,
    PublishHook,
    RefreshHook,
    RefreshReply,
    RPCHandler,
    SubscribeHook,
    SubscribeReply,
    UnsubscribeCause,
    UnsubscribeHook,
)
from roomcast.session.namespaces import (
    ChannelRules,
    ResolvedChannel,
    history_options,
    keeps_history,
)
from roomcast.session.registry import Connected, Registry
from roomcast.session.services import ChannelServices
from roomcast.session.subscriptions import ServerSubscribeOptions, Subscriptions
from roomcast.session.tokens import TokenVerifier

__all__ = [
    "OVERRIDABLE",
    "ChannelRules",
    "ChannelServices",
    "ClientContext",
    "ConnectDetails",
    "ConnectHook",
    "ConnectReply",
    "Connected",
    "Credentials",
    "DisconnectHook",
    "Hooks",
    "MessageHandler",
    "PublishHook",
    "RPCHandler",
    "RefreshHook",
    "RefreshMode",
    "RefreshReply",
    "Registry",
    "ResolvedChannel",
    "ServerSubscribeOptions",
    "Session",
    "SessionServices",
    "SessionState",
    "SubscribeHook",
    "SubscribeReply",
    "Subscriptions",
    "TokenVerifier",
    "UnsubscribeCause",
    "UnsubscribeHook",
    "history_options",
    "history_store",
    "keeps_history",
    "presence_store",
    "read_history",
    "read_presence",
    "read_presence_stats",
]
