"""The admin session: a cookie whose value is its expiry and an HMAC of it, checked on every
admin call; the server keeps no session state.

The MAC's key is derived from both ``admin.secret`` and ``admin.password``, so changing
either ends every session at once. A value is ``<expires>.<mac>``: ``expires`` in whole
seconds since the epoch, ``mac`` HMAC-SHA256 in hex; anything else, a wrong MAC or a time
past ``expires`` is no session.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final

__all__ = ["COOKIE_NAME", "SESSION_SECONDS", "SessionSigner"]

COOKIE_NAME: Final = "roomcast_admin"
SESSION_SECONDS: Final = 12 * 3600
"""How long a login lasts."""

_DOMAIN: Final = b"roomcast-admin-session:"


class SessionSigner:
    """Issues and checks admin session values for one ``secret`` and ``password``."""

    def __init__(self, secret: str, password: str) -> None:
        self._key = hmac.new(secret.encode(), password.encode(), hashlib.sha256).digest()
        self._password = password.encode()

    def password_matches(self, given: str) -> bool:
        """Whether ``given`` is the admin password (compared in constant time)."""
        return hmac.compare_digest(given.encode(), self._password)

    def issue(self, now: float | None = None) -> str:
        """A session value good for :data:`SESSION_SECONDS` from ``now``."""
        expires = int(time.time() if now is None else now) + SESSION_SECONDS
        return f"{expires}.{self._mac(expires)}"

    def valid(self, value: str | None, now: float | None = None) -> bool:
        """Whether ``value`` is a session this signer issued that has not expired."""
        if not value:
            return False
        expires_text, _, mac = value.partition(".")
        if not expires_text.isdigit() or not mac:
            return False
        expires = int(expires_text)
        if not hmac.compare_digest(mac, self._mac(expires)):
            return False
        return (time.time() if now is None else now) < expires

    def _mac(self, expires: int) -> str:
        return hmac.new(self._key, _DOMAIN + str(expires).encode(), hashlib.sha256).hexdigest()
