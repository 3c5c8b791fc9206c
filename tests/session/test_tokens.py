"""TokenVerifier: connection and subscription JWTs signed with HMAC, RSA and ECDSA keys; and
token_verdict: what a client gets for a token on each of the four commands that carry one."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomcast.errors import ConfigurationError
from roomcast.protocol import Disconnect, DisconnectCode, Error, ErrorCode
from roomcast.session.tokens import (
    CONNECT_TOKEN,
    REFRESH_TOKEN,
    SUB_REFRESH_TOKEN,
    SUBSCRIBE_TOKEN,
    ConnectToken,
    SubscriptionToken,
    TokenRejected,
    TokenVerifier,
    announced_ttl,
    expiry_error,
    seconds_left,
    token_verdict,
)
from roomcast.settings import TokenSettings

SECRET = "test-secret-" + "s" * 64
OTHER_SECRET = "other-secret-" + "o" * 64


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def hmac_verifier(**settings: str) -> TokenVerifier:
    return TokenVerifier(TokenSettings(hmac_secret_key=SECRET, **settings))


def hs(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


# --- signatures and algorithms --------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
def test_hmac_tokens_of_every_hs_algorithm_verify(algorithm: str) -> None:
    token = hs({"sub": "alice"}, algorithm=algorithm)
    assert hmac_verifier().verify_connect(token) == ConnectToken(user="alice")


def test_rs256_token_verifies_with_the_rsa_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(TokenSettings(rsa_public_key=public_pem(rsa_key)))
    token = jwt.encode({"sub": "bob"}, rsa_key, algorithm="RS256")
    assert verifier.verify_connect(token) == ConnectToken(user="bob")


def test_es256_token_verifies_with_the_ecdsa_public_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = TokenVerifier(TokenSettings(ecdsa_public_key=public_pem(ec_key)))
    token = jwt.encode({"sub": "carol"}, ec_key, algorithm="ES256")
    assert verifier.verify_connect(token) == ConnectToken(user="carol")


def test_a_token_signed_with_another_secret_is_invalid() -> None:
    token = hs({"sub": "alice"}, secret=OTHER_SECRET)
    assert hmac_verifier().verify_connect(token) is TokenRejected.INVALID


def test_an_rsa_token_signed_by_another_key_is_invalid(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(TokenSettings(rsa_public_key=public_pem(rsa_key)))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"sub": "bob"}, stranger, algorithm="RS256")
    assert verifier.verify_connect(token) is TokenRejected.INVALID


def test_an_algorithm_without_a_configured_key_is_invalid(rsa_key: rsa.RSAPrivateKey) -> None:
    rs_token = jwt.encode({"sub": "bob"}, rsa_key, algorithm="RS256")
    assert hmac_verifier().verify_connect(rs_token) is TokenRejected.INVALID
    rsa_only = TokenVerifier(TokenSettings(rsa_public_key=public_pem(rsa_key)))
    assert rsa_only.verify_connect(hs({"sub": "alice"})) is TokenRejected.INVALID


def test_alg_none_is_invalid() -> None:
    unsigned = jwt.encode({"sub": "mallory"}, "", algorithm="none")
    assert hmac_verifier().verify_connect(unsigned) is TokenRejected.INVALID


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "e30.e30.", "\u00e9t\u00e9"])
def test_malformed_tokens_are_invalid_not_raised(token: str) -> None:
    verifier = hmac_verifier()
    assert verifier.verify_connect(token) is TokenRejected.INVALID
    assert verifier.verify_subscription(token) is TokenRejected.INVALID


def test_configured_says_whether_any_key_is_set(rsa_key: rsa.RSAPrivateKey) -> None:
    assert not TokenVerifier(TokenSettings()).configured
    assert hmac_verifier().configured
    assert TokenVerifier(TokenSettings(rsa_public_key=public_pem(rsa_key))).configured


def test_without_keys_every_token_is_invalid() -> None:
    assert TokenVerifier(TokenSettings()).verify_connect(hs({"sub": "a"})) is TokenRejected.INVALID


@pytest.mark.parametrize("field", ["rsa_public_key", "ecdsa_public_key"])
def test_an_unreadable_pem_is_a_configuration_error(field: str) -> None:
    with pytest.raises(ConfigurationError, match="public key"):
        TokenVerifier(TokenSettings(**{field: "-----BEGIN PUBLIC KEY-----\ngarbage\n"}))


def test_a_key_of_the_wrong_kind_is_a_configuration_error(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(ConfigurationError, match="ES256"):
        TokenVerifier(TokenSettings(ecdsa_public_key=public_pem(rsa_key)))
    with pytest.raises(ConfigurationError, match="RS256"):
        TokenVerifier(TokenSettings(rsa_public_key=public_pem(ec_key)))


def test_a_private_key_where_a_public_key_belongs_fails_at_configuration(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    token = jwt.encode({"sub": "bob"}, rsa_key, algorithm="RS256")
    try:
        verifier = TokenVerifier(TokenSettings(rsa_public_key=private_pem(rsa_key)))
    except ConfigurationError:
        return
    assert verifier.verify_connect(token) == ConnectToken(user="bob")


# --- expiry -----------------------------------------------------------------------------------


def test_an_expired_exp_is_expired_not_invalid() -> None:
    token = hs({"sub": "alice", "exp": int(time.time()) - 10})
    assert hmac_verifier().verify_connect(token) is TokenRejected.EXPIRED
    sub_token = hs({"sub": "alice", "channel": "news", "exp": int(time.time()) - 10})
    assert hmac_verifier().verify_subscription(sub_token) is TokenRejected.EXPIRED


def test_exp_is_the_connection_expiry_when_expire_at_is_absent() -> None:
    exp = int(time.time()) + 600
    verified = hmac_verifier().verify_connect(hs({"sub": "alice", "exp": exp}))
    assert isinstance(verified, ConnectToken)
    assert verified.expire_at == exp


def test_expire_at_wins_over_exp() -> None:
    now = int(time.time())
    claims = {"sub": "alice", "exp": now + 600, "expire_at": now + 60}
    verified = hmac_verifier().verify_connect(hs(claims))
    assert isinstance(verified, ConnectToken)
    assert verified.expire_at == now + 60


def test_expire_at_zero_means_never_even_with_exp() -> None:
    claims = {"sub": "alice", "exp": int(time.time()) + 600, "expire_at": 0}
    verified = hmac_verifier().verify_connect(hs(claims))
    assert isinstance(verified, ConnectToken)
    assert verified.expire_at == 0


def test_a_past_expire_at_is_not_rejected_by_the_verifier() -> None:
    # The verdict (token_verdict), not the verifier, refuses a token whose expire_at has passed.
    past = int(time.time()) - 60
    verified = hmac_verifier().verify_connect(hs({"sub": "alice", "expire_at": past}))
    assert isinstance(verified, ConnectToken)
    assert verified.expire_at == past


def test_no_expiry_claims_mean_never() -> None:
    verified = hmac_verifier().verify_connect(hs({"sub": "alice"}))
    assert isinstance(verified, ConnectToken)
    assert verified.expire_at == 0


def test_a_non_numeric_expire_at_is_invalid() -> None:
    token = hs({"sub": "alice", "expire_at": "tomorrow"})
    assert hmac_verifier().verify_connect(token) is TokenRejected.INVALID


def test_seconds_left() -> None:
    now = int(time.time())
    assert seconds_left(now - 5) == 0
    assert 99 <= seconds_left(now + 100) <= 100


# --- claims -----------------------------------------------------------------------------------


def test_missing_sub_means_anonymous() -> None:
    assert hmac_verifier().verify_connect(hs({})) == ConnectToken(user="")


def test_info_claim_becomes_json_bytes() -> None:
    verified = hmac_verifier().verify_connect(hs({"sub": "alice", "info": {"name": "Alice"}}))
    assert isinstance(verified, ConnectToken)
    assert verified.info == b'{"name":"Alice"}'


def test_channels_claim_becomes_a_tuple() -> None:
    verified = hmac_verifier().verify_connect(hs({"sub": "alice", "channels": ["news", "x:y"]}))
    assert isinstance(verified, ConnectToken)
    assert verified.channels == ("news", "x:y")


@pytest.mark.parametrize("channels", ["news", ["news", 42], {"news": True}, [None]])
def test_a_malformed_channels_claim_is_invalid(channels: object) -> None:
    token = hs({"sub": "alice", "channels": channels})
    assert hmac_verifier().verify_connect(token) is TokenRejected.INVALID


def test_audience_is_checked_when_configured() -> None:
    verifier = hmac_verifier(audience="roomcast")
    assert verifier.verify_connect(hs({"sub": "a", "aud": "roomcast"})) == ConnectToken(user="a")
    assert verifier.verify_connect(hs({"sub": "a", "aud": "other"})) is TokenRejected.INVALID
    assert verifier.verify_connect(hs({"sub": "a"})) is TokenRejected.INVALID


def test_audience_is_ignored_when_not_configured() -> None:
    assert hmac_verifier().verify_connect(hs({"sub": "a", "aud": "x"})) == ConnectToken(user="a")


def test_issuer_is_checked_when_configured() -> None:
    verifier = hmac_verifier(issuer="https://app.example")
    good = hs({"sub": "a", "iss": "https://app.example"})
    assert verifier.verify_connect(good) == ConnectToken(user="a")
    assert verifier.verify_connect(hs({"sub": "a", "iss": "evil"})) is TokenRejected.INVALID
    assert verifier.verify_connect(hs({"sub": "a"})) is TokenRejected.INVALID


def test_issuer_is_ignored_when_not_configured() -> None:
    assert hmac_verifier().verify_connect(hs({"sub": "a", "iss": "x"})) == ConnectToken(user="a")


# --- subscription tokens --------------------------------------------------------------------


def test_subscription_token_claims() -> None:
    exp = int(time.time()) + 600
    claims = {"sub": "alice", "channel": "$room", "client": "c1", "exp": exp, "info": [1]}
    assert hmac_verifier().verify_subscription(hs(claims)) == SubscriptionToken(
        user="alice", channel="$room", client="c1", expire_at=exp, info=b"[1]"
    )


@pytest.mark.parametrize("claims", [{"sub": "a"}, {"sub": "a", "channel": ""}, {"channel": 7}])
def test_a_subscription_token_needs_a_channel(claims: dict[str, Any]) -> None:
    assert hmac_verifier().verify_subscription(hs(claims)) is TokenRejected.INVALID


# --- the verdict --------------------------------------------------------------------------------

USER, CHANNEL, CLIENT = "alice", "$room", "client-1"
PAST = int(time.time()) - 60
LATER = int(time.time()) + 24 * 3600  # still ahead however late in the run a row is checked

TOKEN_EXPIRED = Error.of(ErrorCode.TOKEN_EXPIRED)
EXPIRED = Error.of(ErrorCode.EXPIRED)
PERMISSION_DENIED = Error.of(ErrorCode.PERMISSION_DENIED)
INVALID_TOKEN = Disconnect.of(DisconnectCode.INVALID_TOKEN)
ACCEPTED = "accepted"

USES = {
    "connect": CONNECT_TOKEN,
    "refresh": REFRESH_TOKEN,
    "subscribe": SUBSCRIBE_TOKEN,
    "sub_refresh": SUB_REFRESH_TOKEN,
}


def _sub(**claims: Any) -> SubscriptionToken:
    return SubscriptionToken(**{"user": USER, "channel": CHANNEL, **claims})


# (what the verifier said, {use: what the client gets}): the whole table, row by row.
CONNECTION_ROWS: list[tuple[str, ConnectToken | TokenRejected, dict[str, object]]] = [
    ("exp is past", TokenRejected.EXPIRED, {"connect": TOKEN_EXPIRED, "refresh": TOKEN_EXPIRED}),
    (
        "fails verification",
        TokenRejected.INVALID,
        {"connect": INVALID_TOKEN, "refresh": INVALID_TOKEN},
    ),
    ("valid", ConnectToken(user=USER, expire_at=LATER), {"connect": ACCEPTED, "refresh": ACCEPTED}),
    ("never expires", ConnectToken(user=USER), {"connect": ACCEPTED, "refresh": ACCEPTED}),
    ("another user", ConnectToken(user="mallory"), {"connect": ACCEPTED, "refresh": INVALID_TOKEN}),
    (
        "expire_at is past",
        ConnectToken(user=USER, expire_at=PAST),
        {"connect": EXPIRED, "refresh": EXPIRED},
    ),
]
SUBSCRIPTION_ROWS: list[tuple[str, SubscriptionToken | TokenRejected, dict[str, object]]] = [
    (
        "exp is past",
        TokenRejected.EXPIRED,
        {"subscribe": TOKEN_EXPIRED, "sub_refresh": TOKEN_EXPIRED},
    ),
    (
        "fails verification",
        TokenRejected.INVALID,
        {"subscribe": PERMISSION_DENIED, "sub_refresh": INVALID_TOKEN},
    ),
    ("valid", _sub(expire_at=LATER), {"subscribe": ACCEPTED, "sub_refresh": ACCEPTED}),
    ("for this client", _sub(client=CLIENT), {"subscribe": ACCEPTED, "sub_refresh": ACCEPTED}),
    (
        "another user",
        _sub(user="mallory"),
        {"subscribe": INVALID_TOKEN, "sub_refresh": INVALID_TOKEN},
    ),
    (
        "another channel",
        _sub(channel="$other"),
        {"subscribe": INVALID_TOKEN, "sub_refresh": INVALID_TOKEN},
    ),
    (
        "another client",
        _sub(client="client-2"),
        {"subscribe": INVALID_TOKEN, "sub_refresh": ACCEPTED},
    ),
    ("expire_at is past", _sub(expire_at=PAST), {"subscribe": EXPIRED, "sub_refresh": EXPIRED}),
]


@pytest.mark.parametrize(
    ("use", "verified", "expected"),
    [
        pytest.param(use, verified, expected, id=f"{use}: {case}")
        for case, verified, by_use in [*CONNECTION_ROWS, *SUBSCRIPTION_ROWS]
        for use, expected in by_use.items()
    ],
)
def test_the_verdict_table(
    use: str, verified: ConnectToken | SubscriptionToken | TokenRejected, expected: object
) -> None:
    verdict = token_verdict(verified, USES[use], user=USER, channel=CHANNEL, client=CLIENT)
    assert verdict == (verified if expected == ACCEPTED else expected)


def test_expiry_error() -> None:
    assert expiry_error(0) is None
    assert expiry_error(LATER) is None
    assert expiry_error(PAST) == EXPIRED


def test_announced_ttl_is_at_least_one_second() -> None:
    now = int(time.time())
    assert announced_ttl(now - 5) == 1
    assert announced_ttl(now) == 1
    assert 599 <= announced_ttl(now + 600) <= 600
