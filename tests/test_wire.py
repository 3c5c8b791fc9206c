"""How a publication reads for each kind of client: the TEXT form plain sockets receive."""

from __future__ import annotations

import base64

import msgspec
import pytest

from roomcast.publication import Publication
from roomcast.wire import (
    BASE64,
    BINARY_TAG,
    binary_publication,
    encode_pub_push,
    encode_text,
    text_publication,
)


def test_text_is_a_json_string_and_reads_back_as_its_text() -> None:
    publication = text_publication('say "hi" \u00e9')
    assert msgspec.json.decode(publication.data) == 'say "hi" \u00e9'
    assert encode_text("room", publication) == 'say "hi" \u00e9'


@pytest.mark.parametrize("data", [b"", b"\x00\xff\x10", "é".encode(), bytes(range(256))])
def test_bytes_travel_as_tagged_base64_and_read_back_as_the_bytes(data: bytes) -> None:
    publication = binary_publication(data)
    assert publication.tags == {BINARY_TAG: BASE64}
    assert msgspec.json.decode(publication.data) == base64.b64encode(data).decode()
    assert encode_text("room", publication) == data


def test_an_sdk_sees_bytes_as_the_base64_string_and_the_tag() -> None:
    push = msgspec.json.decode(encode_pub_push("room", binary_publication(b"\x01")))
    pub = {"data": "AQ==", "tags": {BINARY_TAG: BASE64}}
    assert push == {"push": {"channel": "room", "pub": pub}}


def test_other_json_reads_as_its_json_text() -> None:
    assert encode_text("room", Publication(data=b'{"a": [1, 2]}')) == '{"a": [1, 2]}'
    assert encode_text("room", Publication(data=b"42")) == "42"


def test_a_binary_tag_on_a_string_that_is_not_base64_gives_the_text() -> None:
    publication = Publication(data=b'"not base64!"', tags={BINARY_TAG: BASE64})
    assert encode_text("room", publication) == "not base64!"


def test_a_binary_tag_on_data_that_is_not_a_string_gives_the_json() -> None:
    publication = Publication(data=b"[1]", tags={BINARY_TAG: BASE64})
    assert encode_text("room", publication) == "[1]"
