"""Every configuration value roomcast reads, in one pydantic-settings model.

Sources, strongest first: explicit overrides (the CLI's flags, or keyword arguments), the
environment (``ROOMCAST_`` prefix, ``__`` between nested keys, e.g.
``ROOMCAST_CLIENT__TOKEN__HMAC_SECRET_KEY``), a config file (TOML, JSON or YAML, chosen by its
extension), then the defaults below. Key names follow Centrifugo v6 where Centrifugo has the same
idea (``client.insecure``, ``client.token.hmac_secret_key``, ``channel.namespaces``,
``http_api.key``), so a Centrifugo config file loads as it is. Keys roomcast does not read
(Centrifugo's own included) change nothing, but are not dropped without a word:
``Settings.load`` records each one in :attr:`Settings.unknown_keys`, which ``roomcast serve``
and an embedding ``Hub`` log as warnings and ``roomcast checkconfig`` reports as errors.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import Field, PrivateAttr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from roomcast.config_keys import UnknownKey, unknown_environment_keys, unknown_keys
from roomcast.errors import ConfigurationError
from roomcast.settings.sections import (
    AdminSettings,
    ChannelOptions,
    ChannelSettings,
    ClientSettings,
    EngineSettings,
    ExamplesSettings,
    HttpApiSettings,
    Namespace,
    NodeSettings,
    ShutdownSettings,
    TokenSettings,
    WebSocketSettings,
    parse_duration,
)

__all__ = [
    "RESOLVED_SETTINGS_ENV",
    "AdminSettings",
    "ChannelOptions",
    "ChannelSettings",
    "ClientSettings",
    "EngineSettings",
    "ExamplesSettings",
    "HttpApiSettings",
    "Namespace",
    "NodeSettings",
    "Settings",
    "ShutdownSettings",
    "TokenSettings",
    "WebSocketSettings",
    "find_unknown_keys",
    "parse_duration",
]
RESOLVED_SETTINGS_ENV: Final = "ROOMCAST_RESOLVED_SETTINGS"
"""The environment variable through which ``roomcast serve`` hands its resolved settings to
its workers: not a setting, so never an unknown key."""

_ENV_PREFIX: Final = "ROOMCAST_"
_ENV_DELIMITER: Final = "__"

_config_data: ContextVar[dict[str, Any]] = ContextVar("roomcast_config_data")


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Hands pydantic-settings the file ``Settings.load(config_file=...)`` read."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ is overridden; pydantic-settings never calls this

    def __call__(self) -> dict[str, Any]:
        return _config_data.get({})


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML, JSON or YAML config file into a dict.

    Raises:
        ConfigurationError: the file is missing, unreadable, of an unknown type, or malformed.
    """
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
        if suffix == ".toml":
            data: object = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigurationError(
                f"config file {path}: unknown type {suffix!r} (use .toml, .json, .yaml or .yml)"
            )
    except OSError as exc:
        raise ConfigurationError(f"config file {path}: {exc.strerror or exc}") from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"config file {path} is malformed: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"config file {path} must hold a mapping at the top level")
    return data


class Settings(BaseSettings):
    """The whole configuration of one roomcast server or embedded Hub."""

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX, env_nested_delimiter=_ENV_DELIMITER, extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    client: ClientSettings = ClientSettings()
    channel: ChannelSettings = ChannelSettings()
    http_api: HttpApiSettings = HttpApiSettings()
    websocket: WebSocketSettings = WebSocketSettings()
    engine: EngineSettings = EngineSettings()
    node: NodeSettings = NodeSettings()
    examples: ExamplesSettings = ExamplesSettings()
    admin: AdminSettings = AdminSettings()
    shutdown: ShutdownSettings = ShutdownSettings()

    _unknown_keys: tuple[UnknownKey, ...] = PrivateAttr(default=())

    @property
    def unknown_keys(self) -> tuple[UnknownKey, ...]:
        """The keys ``load`` found in its sources that no setting reads, in the order of the
        sources (overrides, environment, file); empty for settings built any other way."""
        return self._unknown_keys

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _ConfigFileSource(settings_cls)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build the settings from overrides, the environment and ``config_file``.

        ``overrides`` are nested dicts keyed like the model (``client={"insecure": True}``) and
        win over everything else.

        Keys no setting reads are ignored and recorded in :attr:`unknown_keys`.

        Raises:
            ConfigurationError: the file cannot be read or a value is invalid; the message names
                the offending key, and ``problems`` lists each one.
        """
        from pydantic import ValidationError
        from pydantic_settings import SettingsError

        data = {} if config_file is None else read_config_file(config_file)
        token = _config_data.set(data)
        try:
            settings = cls(**overrides)
        except SettingsError as exc:
            raise ConfigurationError(f"invalid settings: {exc}") from exc
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            ]
            raise ConfigurationError(
                f"invalid settings: {'; '.join(problems)}", problems=problems
            ) from exc
        finally:
            _config_data.reset(token)
        settings._unknown_keys = tuple(_unknown_keys_in(overrides, os.environ, data, config_file))
        return settings


def find_unknown_keys(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[UnknownKey]:
    """The keys of ``overrides``, the ``ROOMCAST_*`` variables of ``environ`` (the process'
    environment when None) and ``config_file`` that no setting reads, whether or not their
    values are valid (``Settings.load`` stops at the first invalid source).

    Raises:
        ConfigurationError: the file cannot be read.
    """
    data = {} if config_file is None else read_config_file(config_file)
    return _unknown_keys_in(
        overrides or {}, os.environ if environ is None else environ, data, config_file
    )


def _unknown_keys_in(
    overrides: Mapping[str, Any],
    environ: Mapping[str, str],
    data: Mapping[str, Any],
    config_file: Path | None,
) -> list[UnknownKey]:
    found = unknown_keys(overrides, Settings, "Settings.load argument")
    found += unknown_environment_keys(
        environ,
        Settings,
        prefix=_ENV_PREFIX,
        delimiter=_ENV_DELIMITER,
        ignore=frozenset({RESOLVED_SETTINGS_ENV}),
    )
    if config_file is not None:
        found += unknown_keys(data, Settings, f"config file {config_file}")
    return found
