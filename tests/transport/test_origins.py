"""Which browser origins may open a client connection (``client.allowed_origins``).

The endpoint's refusal at the handshake (HTTP 403) is checked on a real server in
``test_client_endpoint.py``; here is the rule itself.
"""

from __future__ import annotations

import pytest

from roomcast.transport.origins import origin_allowed

HOST = "chat.example.com"


@pytest.mark.parametrize("origin", [None, ""])
def test_a_client_without_an_origin_is_allowed(origin: str | None) -> None:
    """Non-browser clients (SDKs on a server, tools) send no Origin header."""
    assert origin_allowed(origin, HOST, [])


def test_a_same_origin_page_is_allowed_without_being_listed() -> None:
    assert origin_allowed("https://chat.example.com", HOST, [])
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", [])


def test_same_origin_compares_host_and_port_ignoring_case() -> None:
    assert origin_allowed("HTTPS://Chat.Example.COM", "chat.EXAMPLE.com", [])
    assert not origin_allowed("http://127.0.0.1:9000", "127.0.0.1:8000", [])
    assert not origin_allowed("https://evil.example.com", HOST, [])


def test_a_foreign_origin_is_refused_unless_listed() -> None:
    assert not origin_allowed("http://evil.example", HOST, [])
    assert not origin_allowed("http://evil.example", None, [])
    assert origin_allowed("http://evil.example", HOST, ["http://evil.example"])
    assert not origin_allowed("http://other.example", HOST, ["http://evil.example"])


def test_patterns_take_wildcards_and_ignore_case() -> None:
    allowed = ["https://*.Example.com"]
    assert origin_allowed("https://app.example.com", None, allowed)
    assert origin_allowed("https://A.B.EXAMPLE.COM", None, allowed)
    assert not origin_allowed("http://app.example.com", None, allowed)  # the scheme counts
    assert not origin_allowed("https://example.org", None, allowed)


def test_a_lone_star_allows_every_origin() -> None:
    assert origin_allowed("http://anything.example:1234", HOST, ["*"])
    assert origin_allowed("null", HOST, ["*"])


def test_the_opaque_null_origin_is_refused_unless_listed() -> None:
    """Sandboxed frames and ``file:`` pages send ``Origin: null``."""
    assert not origin_allowed("null", HOST, [])
    assert origin_allowed("null", HOST, ["null"])
