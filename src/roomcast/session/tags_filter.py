"""Tags filters: which publications reach a subscription that asked for a ``tf``.

A client subscribes with a filter tree over publication tags (``protocol.FilterNode``, the
shape centrifuge-js and centrifuge-python send). :func:`compile_tags_filter` checks the tree
once, at subscribe, and turns it into a :class:`TagsFilter` whose ``matches(tags)`` is one
call of nested closures per publication; a tree that is not valid is an ``Error`` 107
saying which node is wrong and why.

What each comparison does, as Centrifuge does it (``key`` names a tag, ``val`` / ``vals`` the
operands):

=========  ==================================================================
``eq``     the tag is there and equals ``val``
``neq``    the tag is missing, or differs from ``val``
``in``     the tag's value is one of ``vals`` (a missing tag reads as ``""``)
``nin``    the tag's value is none of ``vals`` (a missing tag reads as ``""``)
``ex``     the tag is there; ``nex``: it is not
``sw``     the tag is there and starts with ``val``; ``ew`` ends with it; ``ct`` contains it
``lt``     the tag is there and, both read as decimal numbers, is less than ``val``;
           ``lte``, ``gt``, ``gte`` alike. A tag that is not a number never compares.
=========  ==================================================================

``and`` matches when every one of its ``nodes`` does (at least one node), ``or`` when any
does, ``not`` (exactly one node) when its node does not. A decimal number is an optional
sign, digits and an optional fraction (``-12``, ``0.5``, ``+3.``, ``.25``), compared exactly,
never as a float. Stricter than Centrifuge, which would make such a filter match nothing,
a comparison whose own ``val`` is not a number is refused; so is a node carrying operands of
the other kind of node, or a tree deeper than :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from roomcast import protocol
from roomcast.protocol import Error, ErrorCode

__all__ = ["COMPARISONS", "MAX_DEPTH", "TagsFilter", "compile_tags_filter"]

MAX_DEPTH: Final = 32
"""The deepest filter tree accepted (the root is at depth 1)."""

Tags = Mapping[str, str]
_Matcher = Callable[[Tags], bool]

_DECIMAL: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_NUMERIC: Final = ("lt", "lte", "gt", "gte")
_WITH_VAL: Final = ("eq", "neq", "sw", "ew", "ct", *_NUMERIC)
_WITH_VALS: Final = ("in", "nin")
_PRESENCE: Final = ("ex", "nex")
COMPARISONS: Final = frozenset((*_WITH_VAL, *_WITH_VALS, *_PRESENCE))
"""Every ``cmp`` a leaf may name."""


@dataclass(frozen=True, slots=True)
class TagsFilter:
    """A checked filter tree; ``matches(tags)`` says whether a publication passes."""

    matches: _Matcher
    """``(tags) -> bool``: True when a publication with these tags is delivered."""


def compile_tags_filter(node: protocol.FilterNode) -> TagsFilter | Error:
    """The filter ``node`` describes, or error 107 (bad request) naming the node at fault
    (``tf``, ``tf.nodes[1]``, ...) and what is wrong with it."""
    compiled = _compile(node, "tf", 1)
    if isinstance(compiled, str):
        return Error.of(ErrorCode.BAD_REQUEST, f"invalid tags filter: {compiled}")
    return TagsFilter(compiled)


def _decimal(text: str) -> Decimal | None:
    return Decimal(text) if _DECIMAL.fullmatch(text) else None


def _compile(node: protocol.FilterNode, path: str, depth: int) -> _Matcher | str:
    """The matcher for ``node``, or what is wrong with it (prefixed with its ``path``)."""
    if depth > MAX_DEPTH:
        return f"{path}: the tree is deeper than {MAX_DEPTH} levels"
    if node.op == "":
        return _leaf(node, path)
    if node.op not in ("and", "or", "not"):
        return f"{path}: unknown op {node.op!r} (use and, or, not, or none for a comparison)"
    if node.key or node.cmp or node.val or node.vals:
        return f"{path}: an {node.op!r} node takes only nodes, not key, cmp, val or vals"
    if node.op == "not" and len(node.nodes) != 1:
        return f"{path}: 'not' takes exactly one node, got {len(node.nodes)}"
    if not node.nodes:
        return f"{path}: {node.op!r} takes at least one node"
    children: list[_Matcher] = []
    for index, child in enumerate(node.nodes):
        compiled = _compile(child, f"{path}.nodes[{index}]", depth + 1)
        if isinstance(compiled, str):
            return compiled
        children.append(compiled)
    if node.op == "not":
        (only,) = children
        return lambda tags: not only(tags)
    if node.op == "and":
        return lambda tags: all(child(tags) for child in children)
    return lambda tags: any(child(tags) for child in children)


def _leaf(node: protocol.FilterNode, path: str) -> _Matcher | str:
    cmp, key, val = node.cmp, node.key, node.val
    if node.nodes:
        return f"{path}: a comparison takes no nodes (set op to and, or or not)"
    if not cmp:
        return f"{path}: a comparison needs cmp (or set op)"
    if cmp not in COMPARISONS:
        return f"{path}: unknown cmp {cmp!r} (one of {', '.join(sorted(COMPARISONS))})"
    if cmp in _WITH_VAL:
        if not val:
            return f"{path}: {cmp!r} needs val"
        if node.vals:
            return f"{path}: {cmp!r} takes val, not vals"
    elif cmp in _WITH_VALS:
        if not node.vals:
            return f"{path}: {cmp!r} needs a non-empty vals"
        if val:
            return f"{path}: {cmp!r} takes vals, not val"
    elif val or node.vals:
        return f"{path}: {cmp!r} takes neither val nor vals"
    if not key and cmp not in _PRESENCE:
        return f"{path}: {cmp!r} needs key"
    if cmp in _NUMERIC:
        bound = _decimal(val)
        if bound is None:
            return f"{path}: {cmp!r} needs a decimal number in val, got {val!r}"
        return _numeric(cmp, key, bound)
    return _text(cmp, key, val, frozenset(node.vals))


def _text(cmp: str, key: str, val: str, vals: frozenset[str]) -> _Matcher:
    if cmp == "eq":
        return lambda tags: tags.get(key) == val
    if cmp == "neq":
        return lambda tags: tags.get(key) != val
    if cmp == "in":
        return lambda tags: tags.get(key, "") in vals
    if cmp == "nin":
        return lambda tags: tags.get(key, "") not in vals
    if cmp == "ex":
        return lambda tags: key in tags
    if cmp == "nex":
        return lambda tags: key not in tags
    if cmp == "sw":
        return lambda tags: (tag := tags.get(key)) is not None and tag.startswith(val)
    if cmp == "ew":
        return lambda tags: (tag := tags.get(key)) is not None and tag.endswith(val)
    return lambda tags: (tag := tags.get(key)) is not None and val in tag  # ct


def _numeric(cmp: str, key: str, bound: Decimal) -> _Matcher:
    compare: Callable[[Decimal], bool]
    if cmp == "lt":
        compare = bound.__gt__
    elif cmp == "lte":
        compare = bound.__ge__
    elif cmp == "gt":
        compare = bound.__lt__
    else:
        compare = bound.__le__

    def matches(tags: Tags) -> bool:
        tag = tags.get(key)
        if tag is None:
            return False
        number = _decimal(tag)
        return number is not None and compare(number)

    return matches
