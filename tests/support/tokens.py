"""JWTs for tests: connection and subscription tokens signed the way an app backend signs them."""

from __future__ import annotations

import time
from typing import Any

import jwt

__all__ = ["SECRET", "connection_token", "subscription_token"]

SECRET = "roomcast-test-secret-of-at-least-32-bytes"
"""The HS256 key test servers verify with (``ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY``)."""


def _sign(claims: dict[str, Any], secret: str, expires_in: float | None) -> str:
    if expires_in is not None:
        claims["exp"] = int(time.time() + expires_in)
    return jwt.encode(claims, secret, algorithm="HS256")


def connection_token(
    user: str, *, expires_in: float | None = 3600, secret: str = SECRET, **claims: Any
) -> str:
    """A connection token for ``user`` that expires ``expires_in`` seconds from now (never if
    None; in the past if negative), with any extra ``claims`` (``info``, ``channels``, ...)."""
    return _sign({"sub": user, **claims}, secret, expires_in)


def subscription_token(
    user: str,
    channel: str,
    *,
    expires_in: float | None = 3600,
    secret: str = SECRET,
    **claims: Any,
) -> str:
    """A subscription token letting ``user`` subscribe to ``channel``; see
    :func:`connection_token` for ``expires_in``."""
    return _sign({"sub": user, "channel": channel, **claims}, secret, expires_in)
