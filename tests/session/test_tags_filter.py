"""compile_tags_filter: what each comparison and combination matches, what is refused, and
properties that hold for every tree and every set of tags (Hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomcast.protocol import Error, ErrorCode, FilterNode
from roomcast.session.tags_filter import COMPARISONS, MAX_DEPTH, TagsFilter, compile_tags_filter


def node(**fields: Any) -> FilterNode:
    """A FilterNode decoded from JSON, exactly as it arrives from an SDK."""
    return msgspec.json.decode(msgspec.json.encode(fields), type=FilterNode)


def compiled(**fields: Any) -> TagsFilter:
    result = compile_tags_filter(node(**fields))
    assert isinstance(result, TagsFilter), result
    return result


def refused(**fields: Any) -> str:
    result = compile_tags_filter(node(**fields))
    assert isinstance(result, Error), result
    assert result.code == ErrorCode.BAD_REQUEST
    return result.message


# --- each comparison -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leaf", "tags", "expected"),
    [
        ({"key": "k", "cmp": "eq", "val": "a"}, {"k": "a"}, True),
        ({"key": "k", "cmp": "eq", "val": "a"}, {"k": "b"}, False),
        ({"key": "k", "cmp": "eq", "val": "a"}, {}, False),
        ({"key": "k", "cmp": "neq", "val": "a"}, {"k": "b"}, True),
        ({"key": "k", "cmp": "neq", "val": "a"}, {"k": "a"}, False),
        ({"key": "k", "cmp": "neq", "val": "a"}, {}, True),
        ({"key": "k", "cmp": "in", "vals": ["a", "b"]}, {"k": "b"}, True),
        ({"key": "k", "cmp": "in", "vals": ["a", "b"]}, {"k": "c"}, False),
        ({"key": "k", "cmp": "in", "vals": ["a", "b"]}, {}, False),
        ({"key": "k", "cmp": "in", "vals": ["", "b"]}, {}, True),  # missing reads as ""
        ({"key": "k", "cmp": "nin", "vals": ["a", "b"]}, {"k": "c"}, True),
        ({"key": "k", "cmp": "nin", "vals": ["a", "b"]}, {"k": "a"}, False),
        ({"key": "k", "cmp": "nin", "vals": ["a", "b"]}, {}, True),
        ({"key": "k", "cmp": "ex"}, {"k": ""}, True),
        ({"key": "k", "cmp": "ex"}, {"j": "a"}, False),
        ({"key": "k", "cmp": "nex"}, {"j": "a"}, True),
        ({"key": "k", "cmp": "nex"}, {"k": "a"}, False),
        ({"key": "k", "cmp": "sw", "val": "ab"}, {"k": "abc"}, True),
        ({"key": "k", "cmp": "sw", "val": "ab"}, {"k": "cab"}, False),
        ({"key": "k", "cmp": "sw", "val": "ab"}, {}, False),
        ({"key": "k", "cmp": "ew", "val": "bc"}, {"k": "abc"}, True),
        ({"key": "k", "cmp": "ew", "val": "bc"}, {"k": "bca"}, False),
        ({"key": "k", "cmp": "ct", "val": "b"}, {"k": "abc"}, True),
        ({"key": "k", "cmp": "ct", "val": "x"}, {"k": "abc"}, False),
        ({"key": "k", "cmp": "ct", "val": "x"}, {}, False),
        ({"key": "p", "cmp": "gt", "val": "10"}, {"p": "10.5"}, True),
        ({"key": "p", "cmp": "gt", "val": "10"}, {"p": "10"}, False),
        ({"key": "p", "cmp": "gte", "val": "10"}, {"p": "10.0"}, True),
        ({"key": "p", "cmp": "lt", "val": "10"}, {"p": "9"}, True),
        ({"key": "p", "cmp": "lt", "val": "10"}, {"p": "10"}, False),
        ({"key": "p", "cmp": "lte", "val": "-1.5"}, {"p": "-1.50"}, True),
        ({"key": "p", "cmp": "gt", "val": "9"}, {"p": "10"}, True),  # numbers, not text
        ({"key": "p", "cmp": "lt", "val": "0.3"}, {"p": ".25"}, True),
        ({"key": "p", "cmp": "gt", "val": "1"}, {"p": "abc"}, False),  # not a number
        ({"key": "p", "cmp": "lt", "val": "1"}, {"p": "abc"}, False),
        ({"key": "p", "cmp": "gt", "val": "1"}, {"p": "1e5"}, False),  # no exponents
        ({"key": "p", "cmp": "gt", "val": "1"}, {"p": " 5"}, False),  # no blanks
        ({"key": "p", "cmp": "gt", "val": "1"}, {}, False),
    ],
)
def test_a_leaf_compares_as_centrifuge_does(
    leaf: dict[str, Any], tags: dict[str, str], expected: bool
) -> None:
    assert compiled(**leaf).matches(tags) is expected


def test_decimals_compare_exactly_where_floats_would_not() -> None:
    # 0.1 + 0.2 as floats is 0.30000000000000004; as decimals it is 0.3.
    exact = compiled(key="p", cmp="lte", val="0.3")
    assert exact.matches({"p": "0.30000000000000000001"}) is False
    assert exact.matches({"p": "0.3"}) is True
    big = compiled(key="p", cmp="gt", val="9007199254740992")
    assert big.matches({"p": "9007199254740993"}) is True


def test_and_or_not_combine_their_nodes() -> None:
    is_a = {"key": "k", "cmp": "eq", "val": "a"}
    cheap = {"key": "p", "cmp": "lt", "val": "5"}
    both = compiled(op="and", nodes=[is_a, cheap])
    either = compiled(op="or", nodes=[is_a, cheap])
    neither = compiled(op="not", nodes=[{"op": "or", "nodes": [is_a, cheap]}])
    for tags, expected in [
        ({"k": "a", "p": "1"}, (True, True, False)),
        ({"k": "a", "p": "9"}, (False, True, False)),
        ({"k": "b", "p": "1"}, (False, True, False)),
        ({"k": "b", "p": "9"}, (False, False, True)),
    ]:
        got = (both.matches(tags), either.matches(tags), neither.matches(tags))
        assert got == expected, tags


# --- what is refused -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "reason"),
    [
        ({}, "tf: a comparison needs cmp"),
        ({"key": "k", "cmp": "like", "val": "a"}, "tf: unknown cmp 'like'"),
        ({"op": "xor", "nodes": [{"key": "k", "cmp": "ex"}]}, "tf: unknown op 'xor'"),
        ({"key": "k", "cmp": "eq"}, "tf: 'eq' needs val"),
        ({"key": "k", "cmp": "eq", "val": "a", "vals": ["b"]}, "tf: 'eq' takes val, not vals"),
        ({"key": "k", "cmp": "in"}, "tf: 'in' needs a non-empty vals"),
        ({"key": "k", "cmp": "nin", "vals": ["a"], "val": "b"}, "tf: 'nin' takes vals, not val"),
        ({"key": "k", "cmp": "ex", "val": "a"}, "tf: 'ex' takes neither val nor vals"),
        ({"cmp": "eq", "val": "a"}, "tf: 'eq' needs key"),
        ({"key": "p", "cmp": "gt", "val": "ten"}, "tf: 'gt' needs a decimal number in val"),
        ({"op": "and"}, "tf: 'and' takes at least one node"),
        ({"op": "or", "nodes": []}, "tf: 'or' takes at least one node"),
        ({"op": "not", "nodes": []}, "tf: 'not' takes exactly one node, got 0"),
        (
            {"op": "not", "nodes": [{"key": "k", "cmp": "ex"}, {"key": "j", "cmp": "ex"}]},
            "tf: 'not' takes exactly one node, got 2",
        ),
        (
            {"op": "and", "key": "k", "nodes": [{"key": "k", "cmp": "ex"}]},
            "tf: an 'and' node takes only nodes",
        ),
        (
            {"key": "k", "cmp": "ex", "nodes": [{"key": "k", "cmp": "ex"}]},
            "tf: a comparison takes no nodes",
        ),
        (
            {"op": "or", "nodes": [{"key": "k", "cmp": "ex"}, {"key": "k", "cmp": "sw"}]},
            "tf.nodes[1]: 'sw' needs val",
        ),
    ],
)
def test_an_invalid_tree_is_refused_naming_the_node(tree: dict[str, Any], reason: str) -> None:
    message = refused(**tree)
    assert message.startswith(f"invalid tags filter: {reason}"), message


def test_a_tree_deeper_than_the_limit_is_refused() -> None:
    tree: dict[str, Any] = {"key": "k", "cmp": "ex"}
    for _ in range(MAX_DEPTH - 1):
        tree = {"op": "not", "nodes": [tree]}
    assert compiled(**tree).matches({"k": "a"}) is (MAX_DEPTH % 2 == 1)
    message = refused(op="not", nodes=[tree])
    assert f"deeper than {MAX_DEPTH} levels" in message


# --- properties --------------------------------------------------------------------------------

_KEYS = st.sampled_from(["k", "p", "q"])
_TEXT = st.sampled_from(["", "a", "ab", "b", "1", "10", "-2.5", ".5", "x1"])
_NUMBER = st.sampled_from(["0", "1", "10", "-2.5", "0.5", "3."])
_TAGS = st.dictionaries(_KEYS, _TEXT, max_size=3)


def _leaves() -> st.SearchStrategy[dict[str, Any]]:
    with_val = st.builds(
        lambda key, cmp, val: {"key": key, "cmp": cmp, "val": val},
        _KEYS,
        st.sampled_from(["eq", "neq", "sw", "ew", "ct"]),
        _TEXT.filter(bool),
    )
    numeric = st.builds(
        lambda key, cmp, val: {"key": key, "cmp": cmp, "val": val},
        _KEYS,
        st.sampled_from(["lt", "lte", "gt", "gte"]),
        _NUMBER,
    )
    with_vals = st.builds(
        lambda key, cmp, vals: {"key": key, "cmp": cmp, "vals": vals},
        _KEYS,
        st.sampled_from(["in", "nin"]),
        st.lists(_TEXT, min_size=1, max_size=3),
    )
    presence = st.builds(
        lambda key, cmp: {"key": key, "cmp": cmp}, _KEYS, st.sampled_from(["ex", "nex"])
    )
    return with_val | numeric | with_vals | presence


_TREES: st.SearchStrategy[dict[str, Any]] = st.recursive(
    _leaves(),
    lambda inner: (
        st.builds(
            lambda op, nodes: {"op": op, "nodes": nodes},
            st.sampled_from(["and", "or"]),
            st.lists(inner, min_size=1, max_size=3),
        )
        | st.builds(lambda child: {"op": "not", "nodes": [child]}, inner)
    ),
    max_leaves=8,
)


def _number(text: str) -> Decimal | None:
    """A decimal as the reference reads it: digits with at most one point, maybe signed."""
    body = text[1:] if text[:1] in "+-" else text
    digits = body.replace(".", "", 1)
    if not digits.isdigit() or not digits.isascii() or body.count(".") > 1:
        return None
    return Decimal(text)


def reference(tree: dict[str, Any], tags: dict[str, str]) -> bool:
    """Centrifuge's ``filter.Match``, written out plainly as the oracle."""
    op = tree.get("op", "")
    if op == "and":
        return all(reference(child, tags) for child in tree["nodes"])
    if op == "or":
        return any(reference(child, tags) for child in tree["nodes"])
    if op == "not":
        return not reference(tree["nodes"][0], tags)
    key, cmp, val, vals = tree["key"], tree["cmp"], tree.get("val", ""), tree.get("vals", [])
    present = key in tags
    tag = tags.get(key, "")
    if cmp in ("lt", "lte", "gt", "gte"):
        if not present or (number := _number(tag)) is None:
            return False
        bound = Decimal(val)
        return {
            "lt": number < bound,
            "lte": number <= bound,
            "gt": number > bound,
            "gte": number >= bound,
        }[cmp]
    return {
        "eq": present and tag == val,
        "neq": not present or tag != val,
        "in": tag in vals,
        "nin": tag not in vals,
        "ex": present,
        "nex": not present,
        "sw": present and tag.startswith(val),
        "ew": present and tag.endswith(val),
        "ct": present and val in tag,
    }[cmp]


@given(_TREES, _TAGS)
def test_every_valid_tree_matches_as_the_reference_does(
    tree: dict[str, Any], tags: dict[str, str]
) -> None:
    assert compiled(**tree).matches(tags) is reference(tree, tags)


@given(_TREES, _TAGS)
def test_not_inverts_and_de_morgan_holds(tree: dict[str, Any], tags: dict[str, str]) -> None:
    plain = compiled(**tree).matches(tags)
    assert compiled(op="not", nodes=[tree]).matches(tags) is (not plain)
    assert compiled(op="not", nodes=[{"op": "not", "nodes": [tree]}]).matches(tags) is plain
    negated = {"op": "not", "nodes": [tree]}
    pair_and = compiled(op="not", nodes=[{"op": "and", "nodes": [tree, tree]}]).matches(tags)
    pair_or = compiled(op="or", nodes=[negated, negated]).matches(tags)
    assert pair_and is pair_or


@given(_KEYS, _TEXT.filter(bool), st.lists(_TEXT, min_size=1, max_size=3), _TAGS)
def test_each_comparison_and_its_opposite_disagree_on_every_tags(
    key: str, val: str, vals: list[str], tags: dict[str, str]
) -> None:
    for yes, no in (("eq", "neq"), ("ex", "nex"), ("in", "nin")):
        operands: dict[str, Any] = {"eq": {"val": val}, "ex": {}, "in": {"vals": vals}}[yes]
        assert compiled(key=key, cmp=yes, **operands).matches(tags) is not compiled(
            key=key, cmp=no, **operands
        ).matches(tags)


@given(_KEYS, _NUMBER, _TAGS)
def test_lt_and_gte_split_the_numbers(key: str, val: str, tags: dict[str, str]) -> None:
    below = compiled(key=key, cmp="lt", val=val).matches(tags)
    at_or_above = compiled(key=key, cmp="gte", val=val).matches(tags)
    is_number = key in tags and _number(tags[key]) is not None
    assert (below or at_or_above) is is_number
    assert not (below and at_or_above)


def test_every_comparison_is_covered() -> None:
    assert {"eq", "neq", "in", "nin", "ex", "nex", "sw", "ew", "ct", "lt", "lte", "gt", "gte"} == (
        COMPARISONS
    )
