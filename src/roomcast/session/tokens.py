"""Connection and subscription JWTs, verified with PyJWT the way Centrifugo reads them.

Claims read from a connection token: ``sub`` (user ID, empty for anonymous), ``exp``,
``expire_at`` (when the connection expires, if not ``exp``; 0 means never), ``info`` (any JSON,
shown to other clients in presence and publications), ``channels`` (server-side
subscriptions). A subscription token adds ``channel`` and optional ``client``.

``TokenVerifier`` says whether a token is genuine; :func:`token_verdict` says what the client
gets for it, once for the four commands that carry a token (connect, refresh, subscribe,
sub_refresh), which differ only in the :class:`TokenUse` they pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from roomcast.errors import ConfigurationError
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode
from roomcast.settings import TokenSettings

__all__ = [
    "CONNECT_TOKEN",
    "REFRESH_TOKEN",
    "SUBSCRIBE_TOKEN",
    "SUB_REFRESH_TOKEN",
    "ConnectToken",
    "SubscriptionToken",
    "TokenRejected",
    "TokenUse",
    "TokenVerifier",
    "announced_ttl",
    "expiry_error",
    "seconds_left",
    "token_verdict",
]

_HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
_RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
_ECDSA_ALGORITHMS = ("ES256", "ES384", "ES512")


class TokenRejected(Enum):
    """Why a token was refused: EXPIRED may be fixed by a fresh token, INVALID may not."""

    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ConnectToken:
    """What a valid connection token says."""

    user: str
    expire_at: int = 0
    """Unix seconds after which the connection must refresh; 0 for never."""
    info: bytes = b""
    """The ``info`` claim as JSON bytes, or empty."""
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SubscriptionToken:
    """What a valid subscription token says."""

    user: str
    channel: str
    client: str = ""
    expire_at: int = 0
    info: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)


class TokenVerifier:
    """Checks signatures and expiry with the keys configured in one ``TokenSettings``.

    Raises:
        ConfigurationError: a configured public key cannot be parsed.
    """

    def __init__(self, settings: TokenSettings) -> None:
        self._keys: dict[str, Any] = {}
        if settings.hmac_secret_key:
            for algorithm in _HMAC_ALGORITHMS:
                self._keys[algorithm] = settings.hmac_secret_key
        for pem, algorithms in (
            (settings.rsa_public_key, _RSA_ALGORITHMS),
            (settings.ecdsa_public_key, _ECDSA_ALGORITHMS),
        ):
            if not pem:
                continue
            try:
                key = jwt.get_algorithm_by_name(algorithms[0]).prepare_key(pem)
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise ConfigurationError(
                    f"cannot read a {algorithms[0]} public key: {exc}"
                ) from exc
            if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
                raise ConfigurationError(
                    f"the {algorithms[0]} key must be a public key, not a private one"
                )
            for algorithm in algorithms:
                self._keys[algorithm] = key
        self._audience = settings.audience or None
        self._issuer = settings.issuer or None

    @property
    def configured(self) -> bool:
        """Whether any key is set, i.e. whether tokens can be accepted at all."""
        return bool(self._keys)

    def verify_connect(self, token: str) -> ConnectToken | TokenRejected:
        """The claims of a valid connection token, or why it was rejected."""
        claims = self._decode(token)
        if isinstance(claims, TokenRejected):
            return claims
        channels = claims.get("channels") or []
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            return TokenRejected.INVALID
        expire_at = _expire_at(claims)
        if expire_at is None:
            return TokenRejected.INVALID
        return ConnectToken(
            user=str(claims.get("sub") or ""),
            expire_at=expire_at,
            info=_info(claims),
            channels=tuple(channels),
        )

    def verify_subscription(self, token: str) -> SubscriptionToken | TokenRejected:
        """The claims of a valid subscription token, or why it was rejected."""
        claims = self._decode(token)
        if isinstance(claims, TokenRejected):
            return claims
        channel = claims.get("channel")
        expire_at = _expire_at(claims)
        if not isinstance(channel, str) or not channel or expire_at is None:
            return TokenRejected.INVALID
        return SubscriptionToken(
            user=str(claims.get("sub") or ""),
            channel=channel,
            client=str(claims.get("client") or ""),
            expire_at=expire_at,
            info=_info(claims),
        )

    def _decode(self, token: str) -> dict[str, Any] | TokenRejected:
        try:
            algorithm = jwt.get_unverified_header(token).get("alg", "")
            key = self._keys.get(algorithm)
            if key is None:
                return TokenRejected.INVALID
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            return TokenRejected.EXPIRED
        except jwt.PyJWTError:
            return TokenRejected.INVALID
        return claims


def _expire_at(claims: dict[str, Any]) -> int | None:
    """Unix seconds the token's holder expires at, 0 for never, None for a malformed claim."""
    value = claims.get("expire_at", claims.get("exp", 0))
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value > 0 else 0


def _info(claims: dict[str, Any]) -> bytes:
    info = claims.get("info")
    return b"" if info is None else msgspec.json.encode(info)


# --- the verdict: what a client gets for a token -------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenUse:
    """How one command judges its token: all that differs between the four that carry one."""

    when_invalid: Error | Disconnect
    """What a token that fails verification (signature, algorithm, malformed claims) gets."""
    same_user: bool = False
    """The token's ``sub`` must be the connection's user."""
    same_channel: bool = False
    """The token's ``channel`` must be the command's channel."""
    same_client: bool = False
    """The token's ``client`` claim, when it has one, must be the connection's client ID."""


CONNECT_TOKEN = TokenUse(when_invalid=Disconnect.of(DisconnectCode.INVALID_TOKEN))
"""A connection token on connect: it names the user, so there is nobody to compare with."""
REFRESH_TOKEN = TokenUse(when_invalid=Disconnect.of(DisconnectCode.INVALID_TOKEN), same_user=True)
"""A connection token on refresh."""
SUBSCRIBE_TOKEN = TokenUse(
    when_invalid=Error.of(ErrorCode.PERMISSION_DENIED),
    same_user=True,
    same_channel=True,
    same_client=True,
)
"""A subscription token on subscribe: an invalid one is only a refused subscribe."""
SUB_REFRESH_TOKEN = TokenUse(
    when_invalid=Disconnect.of(DisconnectCode.INVALID_TOKEN), same_user=True, same_channel=True
)
"""A subscription token on sub_refresh; its ``client`` claim is not compared."""

_TOKEN_EXPIRED = Error.of(ErrorCode.TOKEN_EXPIRED)
_NOT_THEIRS = Disconnect.of(DisconnectCode.INVALID_TOKEN)
_EXPIRED = Error.of(ErrorCode.EXPIRED)

Token = TypeVar("Token", ConnectToken, SubscriptionToken)


def token_verdict(
    verified: Token | TokenRejected,
    use: TokenUse,
    *,
    user: str = "",
    channel: str = "",
    client: str = "",
) -> Token | Error | Disconnect:
    """The token itself when the client may use it, else what the client gets instead.

    ``user``, ``channel`` and ``client`` are the connection's and the command's, compared as
    ``use`` says. In this order:

    ====================================================  ===================================
    the signature expired (``exp`` is past)                error 109 token expired
    the token fails verification                           ``use.when_invalid``
    it is another user's, channel's or client's            disconnect 3500 invalid token
    it is valid, but its ``expire_at`` is already past     error 110 expired
    ====================================================  ===================================
    """
    if verified is TokenRejected.EXPIRED:
        return _TOKEN_EXPIRED
    if isinstance(verified, TokenRejected):
        return use.when_invalid
    if use.same_user and verified.user != user:
        return _NOT_THEIRS
    if isinstance(verified, SubscriptionToken):
        if use.same_channel and verified.channel != channel:
            return _NOT_THEIRS
        if use.same_client and verified.client and verified.client != client:
            return _NOT_THEIRS
    expired = expiry_error(verified.expire_at)
    return verified if expired is None else expired


def expiry_error(expire_at: int) -> Error | None:
    """Error 110 (expired) when ``expire_at`` (Unix seconds, 0 for never) is already past:
    for a token's claim, and for credentials an app's connect hook gives."""
    return _EXPIRED if expire_at and seconds_left(expire_at) == 0 else None


def seconds_left(expire_at: int) -> int:
    """Whole seconds until ``expire_at`` (Unix time), never negative; 0 means already due."""
    return max(0, expire_at - int(time.time()))


def announced_ttl(expire_at: int) -> int:
    """Seconds to announce for an expiring connection or subscription: at least 1, as SDKs
    read ``expires`` with ``ttl`` 0 as already expired."""
    return max(1, seconds_left(expire_at))
