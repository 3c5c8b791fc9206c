"""Fossil deltas: the delta encoding the Centrifuge SDKs decode (``delta: "fossil"``).

A delta turns a *source* (the payload the client holds) into a *target* (the new payload). It is
the byte string::

    <target length>\\n  then commands, then  <checksum>;

where every number is written in fossil's base-64 digits (``0-9 A-Z _ a-z ~``, most significant
first) and each command is either ``<n>@<offset>,`` (copy ``n`` bytes of the source from
``offset``) or ``<n>:`` followed by ``n`` literal bytes of the target. The checksum is the sum,
modulo 2**32, of the target read as big-endian 32-bit words (the last, short word padded with
zero bytes), which the decoder checks.

:func:`create` finds copies with a rolling hash over the source cut into ``WINDOW``-byte blocks:
each target position whose window hashes to a source block is checked byte for byte, extended
forwards and backwards, and taken when it saves more than it costs to write. :func:`apply` is
the decoder, for tests and for anyone checking a delta; it raises :class:`FossilError` on a
malformed delta, one that does not fit its source, or a checksum mismatch.

Pure functions of bytes; no I/O. Cost: one pass over the source to index it and, over the
target, a few operations per byte that no copy covers, so a slowly changing document costs
little more than its length; callers bound the sizes they give it.
"""

from __future__ import annotations

import struct
from operator import mul
from typing import Final

__all__ = ["WINDOW", "FossilError", "apply", "checksum", "create"]

WINDOW: Final = 16
"""Bytes per source block, and the width of the rolling hash."""

_DIGITS: Final = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_VALUE: Final = {digit: index for index, digit in enumerate(_DIGITS)}
_MASK: Final = 0xFFFF_FFFF
_SLICE: Final = 64
_WEIGHTS: Final = tuple(range(WINDOW, 0, -1))
_CHAIN_LIMIT: Final = 250
"""Source blocks tried per hash, as fossil bounds them: a source of many equal blocks stays
linear."""


class FossilError(ValueError):
    """A delta that cannot be applied: malformed, not for this source, or a bad checksum."""


def _number(value: int) -> bytes:
    """``value`` (0 or more) in fossil's base-64 digits."""
    if value == 0:
        return b"0"
    out = bytearray()
    while value:
        out.append(_DIGITS[value & 63])
        value >>= 6
    out.reverse()
    return bytes(out)


def checksum(data: bytes) -> int:
    """The sum of ``data`` as big-endian 32-bit words, modulo 2**32 (the last word padded)."""
    padded = data + b"\0" * (-len(data) % 4)
    words: tuple[int, ...] = struct.unpack(f">{len(padded) // 4}I", padded)
    return sum(words) & _MASK


def _hash(data: bytes, start: int) -> tuple[int, int]:
    """The rolling hash's two 16-bit sums over the window at ``start``: ``a`` sums the bytes,
    ``b`` weighs each by its distance from the window's end."""
    window = data[start : start + WINDOW]
    return sum(window) & 0xFFFF, sum(map(mul, _WEIGHTS, window)) & 0xFFFF


def _matching(a: bytes, a_start: int, b: bytes, b_start: int, limit: int) -> int:
    """How many bytes from ``a_start`` in ``a`` equal those from ``b_start`` in ``b``, up to
    ``limit``; compares in slices first, since a copy usually runs long."""
    count = 0
    while count + _SLICE <= limit and (
        a[a_start + count : a_start + count + _SLICE]
        == b[b_start + count : b_start + count + _SLICE]
    ):
        count += _SLICE
    while count < limit and a[a_start + count] == b[b_start + count]:
        count += 1
    return count


def create(source: bytes, target: bytes) -> bytes:
    """A delta that turns ``source`` into ``target``; applying it yields ``target`` exactly.

    A source no longer than one window gives a delta of one literal insert (the whole target).
    """
    n_source, n_target = len(source), len(target)
    out = bytearray(_number(n_target))
    out += b"\n"
    if n_source <= WINDOW:
        if n_target:
            out += _number(n_target) + b":" + target
        out += _number(checksum(target)) + b";"
        return bytes(out)

    # Every whole block of the source by its hash; the newest first on a collision.
    blocks: dict[int, list[int]] = {}
    for start in range(0, n_source - WINDOW, WINDOW):
        a, b = _hash(source, start)
        blocks.setdefault(a | (b << 16), []).insert(0, start)

    base = 0  # everything before target[base] is in the delta already
    while base + WINDOW < n_target:
        a, b = _hash(target, base)
        shift = 0  # the window starts at target[base + shift]
        best_count = best_start = best_literal = 0
        while True:
            for source_start in blocks.get(a | (b << 16), ())[:_CHAIN_LIMIT]:
                window = base + shift
                forward = _matching(
                    source,
                    source_start,
                    target,
                    window,
                    min(n_source - source_start, n_target - window),
                )
                if not forward:
                    continue
                backward = 0
                while (
                    backward < shift
                    and backward < source_start - 1
                    and source[source_start - backward - 1] == target[window - backward - 1]
                ):
                    backward += 1
                count = forward + backward
                literal = shift - backward
                cost = len(_number(literal)) + len(_number(count))
                cost += len(_number(source_start - backward)) + 3
                if count >= cost and count > best_count:
                    best_count, best_start, best_literal = count, source_start - backward, literal
            if best_count:
                if best_literal:
                    out += _number(best_literal) + b":" + target[base : base + best_literal]
                out += _number(best_count) + b"@" + _number(best_start) + b","
                base += best_literal + best_count
                break
            if base + shift + WINDOW >= n_target:
                out += _number(n_target - base) + b":" + target[base:]
                base = n_target
                break
            leaving, entering = target[base + shift], target[base + shift + WINDOW]
            a = (a - leaving + entering) & 0xFFFF
            b = (b - WINDOW * leaving + a) & 0xFFFF
            shift += 1
    if base < n_target:
        out += _number(n_target - base) + b":" + target[base:]
    out += _number(checksum(target)) + b";"
    return bytes(out)


def _read_number(delta: bytes, pos: int) -> tuple[int, int]:
    value = 0
    start = pos
    while pos < len(delta):
        digit = _VALUE.get(delta[pos])
        if digit is None:
            break
        value = (value << 6) | digit
        pos += 1
    if pos == start:
        raise FossilError(f"a number expected at byte {start}")
    return value, pos


def apply(source: bytes, delta: bytes) -> bytes:
    """The target ``delta`` describes, rebuilt from ``source``.

    Raises:
        FossilError: the delta is malformed, copies from outside ``source``, produces a
            target of another length, or its checksum does not match.
    """
    size, pos = _read_number(delta, 0)
    if delta[pos : pos + 1] != b"\n":
        raise FossilError("the target length is not followed by a newline")
    pos += 1
    out = bytearray()
    while pos < len(delta):
        count, pos = _read_number(delta, pos)
        op = delta[pos : pos + 1]
        pos += 1
        if op == b"@":
            offset, pos = _read_number(delta, pos)
            if delta[pos : pos + 1] != b",":
                raise FossilError("a copy command does not end with a comma")
            pos += 1
            if offset + count > len(source):
                raise FossilError("a copy reaches past the end of the source")
            out += source[offset : offset + count]
        elif op == b":":
            if pos + count > len(delta):
                raise FossilError("an insert runs past the end of the delta")
            out += delta[pos : pos + count]
            pos += count
        elif op == b";":
            if len(out) != size:
                raise FossilError(f"the delta made {len(out)} bytes, not {size}")
            if count != checksum(bytes(out)):
                raise FossilError("checksum mismatch")
            return bytes(out)
        else:
            raise FossilError(f"unknown command {op!r}")
        if len(out) > size:
            raise FossilError("the delta makes more bytes than it announced")
    raise FossilError("the delta has no checksum")
