"""The connected clients of one process, by client ID and by user.

The registry knows nothing of sessions: it holds anything with a ``client`` and a ``user``
(:class:`Connected`). The hub keeps a ``Registry[Session]``, so what it finds there is typed
as what it acts on, while this module imports nothing of the session it indexes.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

__all__ = ["Connected", "Registry"]


class Connected(Protocol):
    """What the registry reads of a member: its client ID, unique in the process, and its
    user ("" for anonymous). Neither may change while the member is registered."""

    @property
    def client(self) -> str: ...

    @property
    def user(self) -> str: ...


Member = TypeVar("Member", bound=Connected)


class Registry(Generic[Member]):
    """Tracks connected members so the server API can find them by client or by user."""

    def __init__(self) -> None:
        self._clients: dict[str, Member] = {}
        self._users: dict[str, dict[str, Member]] = {}

    def add(self, member: Member) -> None:
        """Register a member that completed its connect."""
        self._clients[member.client] = member
        self._users.setdefault(member.user, {})[member.client] = member

    def remove(self, member: Member) -> None:
        """Forget a member; unknown members are ignored."""
        if self._clients.pop(member.client, None) is None:
            return
        members = self._users.get(member.user)
        if members is not None:
            members.pop(member.client, None)
            if not members:
                del self._users[member.user]

    def of_user(self, user: str) -> list[Member]:
        """The members of ``user`` (anonymous ones under ``""``), in the order they came."""
        return list(self._users.get(user, {}).values())

    def members(self) -> list[Member]:
        """Every member, in the order they came."""
        return list(self._clients.values())

    def get(self, client: str) -> Member | None:
        """The member with client ID ``client``."""
        return self._clients.get(client)

    @property
    def num_clients(self) -> int:
        """Registered members."""
        return len(self._clients)

    @property
    def num_users(self) -> int:
        """Distinct users among registered members, anonymous counted once."""
        return len(self._users)
