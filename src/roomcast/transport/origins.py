"""Which browser origins may open client connections (``client.allowed_origins``)."""

from __future__ import annotations

from fnmatch import fnmatchcase
from urllib.parse import urlsplit

__all__ = ["origin_allowed"]


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Whether a connection with this ``Origin`` header may proceed.

    No Origin header (a non-browser client) is allowed; so is a same-origin page, whose origin
    names the request's ``Host``. Other origins must match a pattern of ``allowed``
    (``*`` wildcards, e.g. ``https://*.example.com``; ``*`` alone allows all).
    """
    if not origin:
        return True
    origin = origin.lower()
    if host and urlsplit(origin).netloc == host.lower():
        return True
    return any(fnmatchcase(origin, pattern.lower()) for pattern in allowed)
