"""unknown_keys and unknown_environment_keys: every key no setting reads, named once, from a
config file's mapping and from ROOMCAST_* variables."""

from __future__ import annotations

import json

from roomcast.config_keys import UnknownKey, unknown_environment_keys, unknown_keys
from roomcast.settings import Settings


def keys(found: list[UnknownKey]) -> list[str]:
    return [unknown.key for unknown in found]


def test_known_keys_anywhere_in_the_tree_are_not_reported() -> None:
    data = {
        "port": 1,
        "client": {"token": {"hmac_secret_key": "k"}, "ping_interval": "5s"},
        "channel": {"namespaces": [{"name": "chat", "allow_tags_filter": True}]},
    }
    assert unknown_keys(data, Settings, "file") == []


def test_each_unknown_key_is_named_once_at_its_top() -> None:
    data = {
        "grpc_api": {"enabled": True, "port": 10000},
        "client": {"proxy": {"connect": {"enabled": False}}, "tokn": {}},
        "channel": {
            "without_namespace": {"allow_tag_filter": True},
            "namespaces": [{"name": "a"}, {"name": "b", "map": {"mode": "x"}}],
        },
    }
    found = unknown_keys(data, Settings, "config file c.json")
    assert keys(found) == [
        "grpc_api",
        "client.proxy",
        "client.tokn",
        "channel.without_namespace.allow_tag_filter",
        "channel.namespaces[1].map",
    ]
    assert str(found[0]) == "grpc_api (config file c.json)"


def test_a_value_of_the_wrong_shape_is_left_to_validation() -> None:
    data = {"client": "not a mapping", "channel": {"namespaces": "nope"}}
    assert unknown_keys(data, Settings, "file") == []


def test_environment_variables_are_walked_by_their_segments() -> None:
    environ = {
        "ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY": "k",
        "roomcast_client__ping_interval": "5s",  # read case-insensitively, as pydantic does
        "ROOMCAST_CLIENT__TOKN__HMAC_SECRET_KEY": "k",
        "ROOMCAST_PORT__EXTRA": "1",
        "ROOMCAST_NOPE": "1",
        "ROOMCAST_RESOLVED_SETTINGS": "{}",
        "HOME": "/root",
    }
    found = unknown_environment_keys(
        environ,
        Settings,
        prefix="ROOMCAST_",
        delimiter="__",
        ignore=frozenset({"ROOMCAST_RESOLVED_SETTINGS"}),
    )
    assert [(u.key, u.source) for u in found] == [
        ("client.tokn", "environment variable ROOMCAST_CLIENT__TOKN__HMAC_SECRET_KEY"),
        ("port.extra", "environment variable ROOMCAST_PORT__EXTRA"),
        ("nope", "environment variable ROOMCAST_NOPE"),
    ]


def test_json_in_an_environment_variable_is_walked_inside() -> None:
    namespaces = [{"name": "chat", "presence": True, "subscribe_proxy_enabled": True}]
    environ = {
        "ROOMCAST_CHANNEL__NAMESPACES": json.dumps(namespaces),
        "ROOMCAST_CLIENT": json.dumps({"insecure": True, "proxy": {}}),
        "ROOMCAST_HTTP_API": "not json",
    }
    found = unknown_environment_keys(environ, Settings, prefix="ROOMCAST_", delimiter="__")
    assert keys(found) == ["channel.namespaces[0].subscribe_proxy_enabled", "client.proxy"]
