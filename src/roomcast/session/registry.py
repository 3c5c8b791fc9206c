"""The connected sessions of one process, by client ID and by user."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roomcast.session.connection import Session

__all__ = ["Registry"]


class Registry:
    """Tracks connected sessions so the server API can find them."""

    def __init__(self) -> None:
        self._clients: dict[str, Session] = {}
        self._users: dict[str, dict[str, Session]] = {}

    def add(self, session: Session) -> None:
        """Register a session that completed its connect."""
        self._clients[session.client] = session
        self._users.setdefault(session.user, {})[session.client] = session

    def remove(self, session: Session) -> None:
        """Forget a session; unknown sessions are ignored."""
        if self._clients.pop(session.client, None) is None:
            return
        sessions = self._users.get(session.user)
        if sessions is not None:
            sessions.pop(session.client, None)
            if not sessions:
                del self._users[session.user]

    def of_user(self, user: str) -> list[Session]:
        """The sessions of ``user`` (anonymous sessions under ``""``)."""
        return list(self._users.get(user, {}).values())

    def get(self, client: str) -> Session | None:
        """The session with client ID ``client``."""
        return self._clients.get(client)

    @property
    def num_clients(self) -> int:
        """Connected sessions."""
        return len(self._clients)

    @property
    def num_users(self) -> int:
        """Distinct users among connected sessions, anonymous counted once."""
        return len(self._users)
