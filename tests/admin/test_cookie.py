"""An admin session value is good until it expires, for the secret and password that issued
it only; anything tampered with, malformed or expired is no session."""

from __future__ import annotations

import pytest

from roomcast.admin.cookie import SESSION_SECONDS, SessionSigner

NOW = 1_800_000_000.0


def test_an_issued_session_is_valid_until_it_expires() -> None:
    signer = SessionSigner("secret", "password")
    value = signer.issue(now=NOW)
    assert signer.valid(value, now=NOW)
    assert signer.valid(value, now=NOW + SESSION_SECONDS - 1)
    assert not signer.valid(value, now=NOW + SESSION_SECONDS)


@pytest.mark.parametrize(
    ("secret", "password"), [("other secret", "password"), ("secret", "new password")]
)
def test_changing_the_secret_or_the_password_ends_every_session(secret: str, password: str) -> None:
    value = SessionSigner("secret", "password").issue(now=NOW)
    assert not SessionSigner(secret, password).valid(value, now=NOW)


def test_a_session_whose_expiry_was_pushed_back_is_refused() -> None:
    signer = SessionSigner("secret", "password")
    expires, mac = signer.issue(now=NOW).split(".")
    assert not signer.valid(f"{int(expires) + 3600}.{mac}", now=NOW)


@pytest.mark.parametrize("value", [None, "", ".", "abc.def", "123", "123.", "-5.ab", "1.2.3"])
def test_malformed_values_are_no_session(value: str | None) -> None:
    assert not SessionSigner("secret", "password").valid(value, now=NOW)


def test_the_password_is_compared_exactly() -> None:
    signer = SessionSigner("secret", "pässword")
    assert signer.password_matches("pässword")
    assert not signer.password_matches("pässwor")
    assert not signer.password_matches("pässword ")
    assert not signer.password_matches("")
