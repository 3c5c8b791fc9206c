"""Fossil deltas: what ``create`` makes, the SDKs' decoder rebuilds exactly.

The decoder checked against is centrifuge-python's (``centrifuge.fossil.apply_delta``), the one
a Python SDK client runs; the npm SDK's runs in tests/e2e/sdk/test_delta.py.
"""

from __future__ import annotations

import json
import random

import pytest
from centrifuge.fossil import apply_delta  # type: ignore[import-untyped]  # the SDK's decoder
from hypothesis import given, settings
from hypothesis import strategies as st

from roomcast.protocol import fossil


def _edits(source: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    target = bytearray(source)
    for _ in range(rng.randint(0, 6)):
        at = rng.randint(0, len(target))
        roll = rng.random()
        if roll < 0.4:
            target[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 30)))
        elif roll < 0.8:
            del target[at : at + rng.randint(1, 30)]
        else:
            target[at : at + 4] = b"ABCD"
    return bytes(target)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 1 << 30))
def test_the_sdk_decoder_rebuilds_the_target(source: bytes, seed: int) -> None:
    target = _edits(source, seed)
    delta = fossil.create(source, target)
    assert bytes(apply_delta(source, delta)) == target
    assert fossil.apply(source, delta) == target


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=500), st.binary(max_size=500))
def test_unrelated_payloads_round_trip_too(source: bytes, target: bytes) -> None:
    assert bytes(apply_delta(source, fossil.create(source, target))) == target


def test_a_slowly_changing_document_gives_a_small_delta() -> None:
    document = {"items": [{"id": i, "name": f"item {i}", "qty": i % 7} for i in range(60)]}
    source = json.dumps(document).encode()
    document["items"][30]["qty"] = 1234
    target = json.dumps(document).encode()
    delta = fossil.create(source, target)
    assert len(source) > 2000
    assert len(delta) < 40
    assert bytes(apply_delta(source, delta)) == target


def test_the_format_is_fossils() -> None:
    # 16 bytes copied, 4 inserted: "<len>\n" "G@0," (16 at 0) "4:tail" "<checksum>;"
    source = b"0123456789abcdef" * 2
    delta = fossil.create(source, source[:16] + b"tail")
    assert delta.startswith(b"K\n")  # 20 in base 64: "K"
    assert b"G@0," in delta
    assert b"4:tail" in delta
    assert delta.endswith(b";")


@pytest.mark.parametrize(
    ("delta", "problem"),
    [
        (b"", "a number expected"),
        (b"3", "newline"),
        (b"3\n3@99,", "past the end of the source"),
        (b"3\n9:ab", "past the end of the delta"),
        (b"3\n3:abc0;", "checksum"),
        (b"3\n3:abc", "no checksum"),
        (b"3\n3?abc", "unknown command"),
    ],
)
def test_a_malformed_delta_is_refused(delta: bytes, problem: str) -> None:
    with pytest.raises(fossil.FossilError, match=problem):
        fossil.apply(b"source bytes here", delta)
