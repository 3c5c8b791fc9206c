"""unserved_fields: which map and shared-poll fields a request sets, for a refusal by name."""

from __future__ import annotations

import msgspec
import pytest

from roomcast.protocol import (
    UNSERVED_FIELDS,
    HistoryRequest,
    PublishRequest,
    SubRefreshRequest,
    SubscribeRequest,
    unserved_fields,
)


def test_a_request_roomcast_serves_whole_names_nothing() -> None:
    assert unserved_fields(SubscribeRequest(channel="c", recover=True, flag=3)) == []
    assert unserved_fields(PublishRequest(channel="c", data=msgspec.Raw(b"1"))) == []
    assert unserved_fields(SubRefreshRequest(channel="c", token="t")) == []
    assert unserved_fields(HistoryRequest(channel="c", limit=5)) == []


@pytest.mark.parametrize(
    ("request_", "names"),
    [
        (SubscribeRequest(channel="c", type=1), ["type"]),
        (SubscribeRequest(channel="c", asc=True, cursor="x"), ["cursor", "asc"]),
        (PublishRequest(channel="c", removed=True), ["removed"]),
        (SubRefreshRequest(channel="c", untrack=["k"]), ["untrack"]),
        (SubRefreshRequest(channel="c", track=[msgspec.Raw(b"{}")]), ["track"]),
    ],
)
def test_each_field_set_is_named_in_declaration_order(
    request_: SubscribeRequest | PublishRequest | SubRefreshRequest, names: list[str]
) -> None:
    assert unserved_fields(request_) == names


def test_every_unserved_field_exists_on_its_request() -> None:
    for kind, names in UNSERVED_FIELDS.items():
        assert set(names) <= set(kind.__struct_fields__), kind
