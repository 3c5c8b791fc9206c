"""Settings.load: defaults, config files, the environment, overrides, and their errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from roomcast.errors import ConfigurationError
from roomcast.settings import ChannelOptions, Settings, find_unknown_keys, parse_duration

CENTRIFUGO_V6: dict[str, Any] = {
    "client": {
        "token": {"hmac_secret_key": "s3cret"},
        "allowed_origins": ["http://localhost:3000"],
        "ping_interval": "20s",
        "proxy": {"connect": {"enabled": False}},  # not a roomcast key
    },
    "channel": {
        "without_namespace": {"allow_subscribe_for_client": True},
        "namespaces": [
            {
                "name": "chat",
                "presence": True,
                "history_size": 10,
                "history_ttl": "5m",
                "force_recovery": True,
                "subscribe_proxy_enabled": True,  # not a roomcast key
            },
            {"name": "news", "allow_history_for_subscriber": True},
        ],
    },
    "http_api": {"key": "api-key"},
    "admin": {"enabled": True, "password": "pw", "secret": "admin-secret"},
    "prometheus": {"enabled": True},  # not a roomcast section: /metrics is always served
}

CENTRIFUGO_V6_TOML = """
[admin]
enabled = true
password = "pw"
secret = "admin-secret"

[prometheus]
enabled = true

[client]
allowed_origins = ["http://localhost:3000"]
ping_interval = "20s"

[client.token]
hmac_secret_key = "s3cret"

[client.proxy.connect]
enabled = false

[channel.without_namespace]
allow_subscribe_for_client = true

[[channel.namespaces]]
name = "chat"
presence = true
history_size = 10
history_ttl = "5m"
force_recovery = true
subscribe_proxy_enabled = true

[[channel.namespaces]]
name = "news"
allow_history_for_subscriber = true

[http_api]
key = "api-key"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ROOMCAST_"):
            monkeypatch.delenv(name)


def write(path: Path, data: dict[str, Any]) -> Path:
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data))
    return path


def test_defaults() -> None:
    settings = Settings.load()
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.client.insecure is False
    assert settings.client.ping_interval == 25.0
    assert settings.client.token.hmac_secret_key == ""
    assert settings.channel.namespaces == []
    assert settings.http_api.key == ""
    assert settings.engine.broker_url == "memory://"


@pytest.mark.parametrize("name", ["centrifugo.toml", "centrifugo.json", "centrifugo.yaml"])
def test_centrifugo_v6_config_file_loads(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if path.suffix == ".toml":
        path.write_text(CENTRIFUGO_V6_TOML)
    else:
        write(path, CENTRIFUGO_V6)
    settings = Settings.load(config_file=path)
    assert settings.client.token.hmac_secret_key == "s3cret"
    assert settings.client.allowed_origins == ["http://localhost:3000"]
    assert settings.client.ping_interval == 20.0
    assert settings.http_api.key == "api-key"
    assert settings.channel.without_namespace.allow_subscribe_for_client is True
    chat, news = settings.channel.namespaces
    assert (chat.name, chat.presence, chat.history_size) == ("chat", True, 10)
    assert (chat.history_ttl, chat.force_recovery) == (300.0, True)
    assert (news.name, news.allow_history_for_subscriber, news.presence) == ("news", True, False)
    admin = settings.admin
    assert (admin.enabled, admin.password, admin.secret) == (True, "pw", "admin-secret")
    # Centrifugo's keys roomcast does not read are recorded, each once, for the warnings.
    assert sorted(unknown.key for unknown in settings.unknown_keys) == [
        "channel.namespaces[0].subscribe_proxy_enabled",
        "client.proxy",
        "prometheus",
    ]
    assert {unknown.source for unknown in settings.unknown_keys} == {f"config file {path}"}


def test_yml_extension_is_yaml(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", {"port": 9001})
    assert Settings.load(config_file=path).port == 9001


def test_precedence_overrides_then_env_then_file_then_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "config.json",
        {
            "port": 7000,
            "client": {"insecure": False, "token": {"hmac_secret_key": "from-file"}},
            "http_api": {"key": "from-file"},
        },
    )
    monkeypatch.setenv("ROOMCAST_CLIENT__INSECURE", "true")
    monkeypatch.setenv("ROOMCAST_HTTP_API__KEY", "from-env")
    monkeypatch.setenv("ROOMCAST_CLIENT__PING_INTERVAL", "1m30s")
    settings = Settings.load(config_file=path, http_api={"key": "from-override"})
    assert settings.http_api.key == "from-override"  # overrides > env > file
    assert settings.client.insecure is True  # env > file
    assert settings.client.ping_interval == 90.0  # env > default
    assert settings.client.token.hmac_secret_key == "from-file"  # file, beside env siblings
    assert settings.port == 7000  # file > default
    assert settings.host == "127.0.0.1"  # default


def test_nested_override_keeps_sibling_keys_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "config.json", {"client": {"token": {"hmac_secret_key": "k"}}})
    settings = Settings.load(config_file=path, client={"ping_interval": "5s"})
    assert settings.client.ping_interval == 5.0
    assert settings.client.token.hmac_secret_key == "k"


def test_env_reaches_deeply_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY", "env-secret")
    assert Settings.load().client.token.hmac_secret_key == "env-secret"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("25s", 25.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("1.5s", 1.5),
        ("12", 12.0),
        (12, 12.0),
        (0.25, 0.25),
    ],
)
def test_durations_go_style_or_numbers(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds
    assert Settings.load(client={"ping_interval": value}).client.ping_interval == seconds


@pytest.mark.parametrize("value", ["soon", "5x", "1m30", "-1s", -3, ""])
def test_invalid_duration_names_the_key(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"client\.ping_interval"):
        Settings.load(client={"ping_interval": value})


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"port": 70000}, "port"),
        ({"log_level": "loud"}, "log_level"),
        ({"workers": 0}, "workers"),
        ({"client": {"queue_max_size": 0}}, r"client\.queue_max_size"),
        ({"channel": {"namespaces": [{"name": "bad name!"}]}}, r"channel\.namespaces\.0\.name"),
    ],
)
def test_invalid_value_names_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        Settings.load(**overrides)


def test_invalid_env_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_CLIENT__INSECURE", "maybe")
    with pytest.raises(ConfigurationError, match=r"client\.insecure"):
        Settings.load()


def test_malformed_json_in_env_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMCAST_CHANNEL__NAMESPACES", "not json")
    with pytest.raises(ConfigurationError, match="channel"):
        Settings.load()


def test_duplicate_namespace_names_are_rejected() -> None:
    namespaces = [{"name": "chat"}, {"name": "news"}, {"name": "chat"}]
    with pytest.raises(ConfigurationError, match=r"unique.*chat"):
        Settings.load(channel={"namespaces": namespaces})


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.toml", "[client\ninsecure = true"),
        ("bad.json", '{"client": '),
        ("bad.yaml", "client: [unclosed"),
        ("list.yaml", "- just\n- a list\n"),
        ("binary.json", b"\xff\xfe{}"),
    ],
)
def test_malformed_file_names_the_file(tmp_path: Path, name: str, text: str | bytes) -> None:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(ConfigurationError, match=re.escape(name)):
        Settings.load(config_file=path)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"absent\.toml"):
        Settings.load(config_file=tmp_path / "absent.toml")


def test_unknown_extension_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    path.write_text("[client]\ninsecure = true\n")
    with pytest.raises(ConfigurationError, match=r"config\.ini.*unknown type"):
        Settings.load(config_file=path)


def test_invalid_value_in_file_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", {"client": {"pong_timeout": "forever"}})
    with pytest.raises(ConfigurationError, match=r"client\.pong_timeout"):
        Settings.load(config_file=path)


def test_recovery_without_history_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="recovery and positioning need history"):
        Settings.load(channel={"namespaces": [{"name": "news", "force_recovery": True}]})
    news = {"name": "news", "force_recovery": True, "history_size": 10, "history_ttl": "60s"}
    settings = Settings.load(channel={"namespaces": [news]})
    assert settings.channel.namespaces[0].history_ttl == 60.0


def test_unknown_keys_of_every_source_are_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "config.json", {"client": {"insecure": True, "insecur": True}})
    monkeypatch.setenv("ROOMCAST_ENGINE__BROKR", "memory://")
    monkeypatch.setenv("ROOMCAST_RESOLVED_SETTINGS", "{}")  # how serve hands settings over
    settings = Settings.load(config_file=path, examples={"enable": False})
    assert [str(unknown) for unknown in settings.unknown_keys] == [
        "examples.enable (Settings.load argument)",
        "engine.brokr (environment variable ROOMCAST_ENGINE__BROKR)",
        f"client.insecur (config file {path})",
    ]
    assert settings.client.insecure is True  # the known keys beside them still apply
    monkeypatch.delenv("ROOMCAST_ENGINE__BROKR")
    assert Settings.load().unknown_keys == ()


def test_find_unknown_keys_reports_them_even_when_a_value_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "config.json", {"port": "many", "portt": 1})
    with pytest.raises(ConfigurationError):
        Settings.load(config_file=path)
    assert [str(u) for u in find_unknown_keys(path, environ={})] == [f"portt (config file {path})"]


def test_a_configuration_error_lists_each_problem() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.load(port=-1, client={"ping_interval": "soon"})
    assert raised.value.problems == (
        "port: Input should be greater than or equal to 0",
        "client.ping_interval: Input should be a valid number, unable to parse string as a number",
    )


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ({"channel_regex": "(["}, "channel_regex: Value error, not a regular expression"),
        ({"force_recovery_mode": "latest"}, "force_recovery_mode: Input should be 'stream'"),
        ({"auto_cache_recover": True}, "auto_cache_recover needs force_recovery"),
        (
            {
                "auto_cache_recover": True,
                "force_recovery": True,
                "history_size": 1,
                "history_ttl": 5,
            },
            "auto_cache_recover needs force_recovery and force_recovery_mode",
        ),
    ],
)
def test_channel_options_of_this_issue_are_checked(namespace: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Settings.load(channel={"namespaces": [{"name": "ns", **namespace}]})


def test_channel_options_of_this_issue_load() -> None:
    options = {
        "name": "ns",
        "allow_tags_filter": True,
        "channel_regex": "^[a-z]+$",
        "force_recovery": True,
        "force_recovery_mode": "cache",
        "auto_cache_recover": True,
        "history_size": 1,
        "history_ttl": "5s",
    }
    (ns,) = Settings.load(channel={"namespaces": [options]}).channel.namespaces
    assert (ns.allow_tags_filter, ns.channel_regex) == (True, "^[a-z]+$")
    assert (ns.force_recovery_mode, ns.auto_cache_recover) == ("cache", True)
    default = Settings.load(channel={"namespaces": [{"name": "dd", "force_recovery_mode": ""}]})
    assert default.channel.namespaces[0].force_recovery_mode == "stream"


@pytest.mark.parametrize(
    ("admin", "missing"),
    [
        ({"enabled": True}, "admin.password and admin.secret"),
        ({"enabled": True, "password": "pw"}, "admin.secret"),
        ({"enabled": True, "secret": "s"}, "admin.password"),
    ],
)
def test_the_admin_ui_enabled_without_its_credentials_is_refused_by_name(
    admin: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.load(admin=admin)
    assert f"admin.enabled needs {missing}:" in str(refused.value)
    assert refused.value.problems[0].startswith("admin: ")


def test_the_admin_ui_is_off_by_default_and_credentials_alone_do_not_enable_it() -> None:
    assert Settings.load().admin.enabled is False
    assert Settings.load(admin={"password": "pw"}).admin.enabled is False


def test_the_shutdown_timeout_is_a_duration_defaulting_to_30s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings.load().shutdown.timeout == 30.0
    monkeypatch.setenv("ROOMCAST_SHUTDOWN__TIMEOUT", "2.5s")
    assert Settings.load().shutdown.timeout == 2.5
    with pytest.raises(ConfigurationError, match=r"shutdown\.timeout"):
        Settings.load(shutdown={"timeout": "-1s"})


def test_delta_publish_needs_an_allowed_delta_type() -> None:
    with pytest.raises(ValueError, match="delta_publish needs allowed_delta_types"):
        ChannelOptions(delta_publish=True)
    options = ChannelOptions(allowed_delta_types=["fossil"], delta_publish=True)
    assert options.allowed_delta_types == ["fossil"]
    with pytest.raises(ValueError, match="fossil"):
        ChannelOptions(allowed_delta_types=["zstd"])  # type: ignore[list-item]


def test_protobuf_is_served_unless_turned_off() -> None:
    assert Settings().websocket.protobuf is True
    assert Settings.load(websocket={"protobuf": False}).websocket.protobuf is False
