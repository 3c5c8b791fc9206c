"""Who may call the server API: the API key check, as Centrifugo does it."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from roomcast.settings import HttpApiSettings

__all__ = ["NO_KEY_CONFIGURED", "WRONG_KEY", "refusal"]

NO_KEY_CONFIGURED = (
    "the server API is disabled: no API key is configured; set http_api.key "
    "(roomcast serve --api-key, or ROOMCAST_HTTP_API__KEY), or http_api.insecure for development"
)
WRONG_KEY = (
    "invalid or missing API key: send it as 'X-API-Key: <key>' or 'Authorization: apikey <key>'"
)


def refusal(headers: Mapping[str, str], settings: HttpApiSettings) -> str | None:
    """Why a request with ``headers`` may not call the API, or None when it may.

    With ``settings.insecure`` every request may. Otherwise the key is read from
    ``X-API-Key``, or, when that header is absent, from ``Authorization: apikey <key>``, and
    compared in constant time. With no key configured every request is refused, so a server
    never runs an open API by accident. ``headers`` must be case-insensitive (Starlette's are).
    Centrifugo also reads an ``api_key`` query parameter; roomcast does not, so keys never land
    in access logs.
    """
    if settings.insecure:
        return None
    if not settings.key:
        return NO_KEY_CONFIGURED
    given = headers.get("x-api-key")
    if not given:
        scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
        given = credentials.strip() if scheme.lower() == "apikey" else ""
    if given and hmac.compare_digest(given.encode(), settings.key.encode()):
        return None
    return WRONG_KEY
