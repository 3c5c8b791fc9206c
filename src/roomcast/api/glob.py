"""Channel patterns for the ``channels`` method, in the glob syntax Centrifugo uses (gobwas/glob).

``*`` any run of characters (channel names have no separators here), ``?`` one character,
``[abc]`` / ``[a-z]`` one of a set, ``[!abc]`` one not in it, ``{a,b}`` either alternative
(alternatives may hold patterns), ``\\`` makes the next character literal.
"""

from __future__ import annotations

import re

__all__ = ["compile_glob"]


def compile_glob(pattern: str) -> re.Pattern[str] | None:
    """A regex whose ``fullmatch`` accepts the channel names ``pattern`` matches.

    None if ``pattern`` is malformed: an unclosed ``[`` or ``{``, a stray ``}``, a trailing
    ``\\`` or a reversed range such as ``[z-a]``.
    """
    parts: list[str] = []
    depth = 0  # how many {alternatives} enclose the current position
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 == len(pattern):
                return None
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "[":
            start = i + 1
            negate = pattern.startswith("!", start)
            start += negate
            end = pattern.find("]", start + 1)  # a "]" first in the set belongs to it
            if end < 0:
                return None
            body = pattern[start:end]
            escaped = "".join("\\" + c if c in "\\^[]" else c for c in body)
            parts.append(f"[{'^' if negate else ''}{escaped}]")
            i = end + 1
            continue
        if char == "{":
            depth += 1
            parts.append("(?:")
        elif char == "}" and depth:
            depth -= 1
            parts.append(")")
        elif char == "," and depth:
            parts.append("|")
        elif char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "}":
            return None
        else:
            parts.append(re.escape(char))
        i += 1
    if depth:
        return None
    try:
        return re.compile("".join(parts), re.DOTALL)
    except re.error:  # e.g. a reversed range such as [z-a]
        return None
