"""How a publication reads for each kind of client: the TEXT form plain sockets receive."""

from __future__ import annotations

import base64
from dataclasses import replace

import msgspec
import pytest

from roomcast.publication import Publication
from roomcast.wire import (
    BASE64,
    BINARY_TAG,
    CENTRIFUGE_ENCODERS,
    DELTA_MAX_BYTES,
    EVENT_ENCODERS,
    DeltaForms,
    WireFormat,
    binary_publication,
    client_payload,
    encode_pub_push,
    encode_text,
    text_publication,
    wire_publication,
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


# --- Protobuf and delta forms -------------------------------------------------------------------


def test_protobuf_clients_get_a_binary_publication_as_its_bytes_without_the_tag() -> None:
    publication = replace(binary_publication(b"\x00\xff"), tags={BINARY_TAG: BASE64, "k": "v"})
    assert client_payload(publication, binary=True) == (b"\x00\xff", {"k": "v"})
    assert client_payload(publication, binary=False) == (publication.data, publication.tags)
    json_publication = Publication(data=b'{"a":1}', tags={"k": "v"})
    assert client_payload(json_publication, binary=True) == (b'{"a":1}', {"k": "v"})
    mislabelled = Publication(data=b'"not base64!"', tags={BINARY_TAG: BASE64})
    assert client_payload(mislabelled, binary=True) == (mislabelled.data, mislabelled.tags)


def test_reply_publications_take_each_formats_form() -> None:
    publication = Publication(data=b'{"a":1}', offset=4)
    assert bytes(wire_publication(publication).data) == b'{"a":1}'
    delta_json = wire_publication(publication, WireFormat.CENTRIFUGE_JSON_DELTA)
    assert bytes(delta_json.data) == b'"{\\"a\\":1}"'  # a JSON string of the JSON text
    binary = wire_publication(binary_publication(b"\x01"), WireFormat.CENTRIFUGE_PROTOBUF)
    assert (bytes(binary.data), binary.tags) == (b"\x01", {})


def test_every_centrifuge_format_has_its_encoders() -> None:
    centrifuge = [f for f in WireFormat if f is not WireFormat.TEXT]
    assert set(CENTRIFUGE_ENCODERS) == set(centrifuge) == set(EVENT_ENCODERS)
    assert [f for f in centrifuge if f.delta] == [
        WireFormat.CENTRIFUGE_JSON_DELTA,
        WireFormat.CENTRIFUGE_PROTOBUF_DELTA,
    ]
    assert isinstance(
        CENTRIFUGE_ENCODERS[WireFormat.CENTRIFUGE_PROTOBUF]("c", Publication(b"1")), bytes
    )


def test_a_delta_goes_only_where_it_pays_off() -> None:
    base = Publication(data=b'{"text":"' + b"x" * 200 + b'"}', offset=1, epoch="e")
    follow = Publication(data=b'{"text":"' + b"x" * 199 + b'y"}', offset=2, epoch="e")
    forms = DeltaForms("c", follow)
    whole = forms.message(WireFormat.CENTRIFUGE_JSON_DELTA, None)
    delta = forms.message(WireFormat.CENTRIFUGE_JSON_DELTA, base)
    assert isinstance(whole, str)
    assert isinstance(delta, str)
    assert '"delta":true' in delta
    assert len(delta) < len(whole) // 2
    # A copy of the base read back from history is the same publication: the same delta.
    assert forms.message(WireFormat.CENTRIFUGE_JSON_DELTA, replace(base)) == delta
    unlike = DeltaForms("c", Publication(data=b'"tiny"', offset=3, epoch="e"))
    assert '"delta"' not in str(unlike.message(WireFormat.CENTRIFUGE_JSON_DELTA, follow))
    big = b'"' + b"x" * (DELTA_MAX_BYTES + 10) + b'"'
    over = DeltaForms("c", Publication(data=big + b" ", offset=2, epoch="e"))
    sent = over.message(WireFormat.CENTRIFUGE_PROTOBUF_DELTA, Publication(big, 1, "e"))
    assert isinstance(sent, bytes)
    assert len(sent) > DELTA_MAX_BYTES
