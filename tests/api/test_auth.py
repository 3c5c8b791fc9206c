"""The API key check (``roomcast.api.auth.refusal``): which headers let a call in."""

from __future__ import annotations

import pytest

from roomcast.api.auth import NO_KEY_CONFIGURED, refusal
from roomcast.settings import HttpApiSettings


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"x-api-key": "s3cret"}, True),
        ({"authorization": "apikey s3cret"}, True),
        ({"authorization": "ApiKey s3cret"}, True),
        ({"authorization": "Bearer s3cret"}, False),
        ({"x-api-key": "wrong", "authorization": "apikey s3cret"}, False),
        ({"x-api-key": "s3cre"}, False),
        ({}, False),
    ],
)
def test_refusal(headers: dict[str, str], allowed: bool) -> None:
    settings = HttpApiSettings(key="s3cret")
    assert (refusal(headers, settings) is None) is allowed
    assert refusal(headers, HttpApiSettings(insecure=True)) is None
    assert refusal(headers, HttpApiSettings()) == NO_KEY_CONFIGURED
