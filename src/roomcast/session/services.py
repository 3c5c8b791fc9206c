"""The vocabulary every session module shares: its states, its services, its TTLs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from roomcast.engines.base import PresenceStore
from roomcast.node import Node
from roomcast.session.hooks import Hooks
from roomcast.session.namespaces import ChannelRules
from roomcast.session.registry import Registry
from roomcast.session.tokens import TokenVerifier, seconds_left
from roomcast.settings import Settings

__all__ = ["SessionServices", "SessionState", "announced_ttl"]


class SessionState(Enum):
    """Where a session is in its life; see the module docstring."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What every session of one hub shares."""

    settings: Settings
    node: Node
    tokens: TokenVerifier
    subscription_tokens: TokenVerifier
    channels: ChannelRules
    hooks: Hooks
    registry: Registry
    presence: PresenceStore | None = None


def announced_ttl(expire_at: int) -> int:
    """Seconds to announce for an expiring connection or subscription: at least 1, as SDKs
    read ``expires`` with ``ttl`` 0 as already expired."""
    return max(1, seconds_left(expire_at))
