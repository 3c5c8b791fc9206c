"""Channel patterns of the ``channels`` method (``roomcast.api.glob``), as Centrifugo reads them."""

from __future__ import annotations

import pytest

from roomcast.api.glob import compile_glob


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("news*", "news:1", True),
        ("news*", "old-news", False),
        ("*", "", True),
        ("ch?", "ch1", True),
        ("ch?", "ch12", False),
        ("{chat,room}:*", "room:5", True),
        ("{chat,room}:*", "lobby:5", False),
        ("[a-c]x", "bx", True),
        ("[!a-c]x", "bx", False),
        ("a\\*", "a*", True),
        ("a\\*", "ab", False),
        ("a.b", "axb", False),
    ],
)
def test_glob(pattern: str, name: str, matches: bool) -> None:
    compiled = compile_glob(pattern)
    assert compiled is not None
    assert bool(compiled.fullmatch(name)) is matches


@pytest.mark.parametrize("pattern", ["{a", "a}", "[ab", "a\\", "[z-a]"])
def test_glob_refuses_malformed_patterns(pattern: str) -> None:
    assert compile_glob(pattern) is None
