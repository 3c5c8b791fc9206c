"""The seed endpoints' static page, read once from the package's ``static/`` folder."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["chat_page"]


@cache
def chat_page() -> str:
    """The seed chat page (HTML and JS, no build step) served at ``/``."""
    return files("roomcast.server.seeds").joinpath("static/chat.html").read_text(encoding="utf-8")
