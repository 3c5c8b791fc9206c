"""The sections of the settings model: one pydantic model per top-level key (``client``,
``channel``, ``http_api``, ...), with the defaults, bounds and cross-field rules of each.

A section ignores keys it does not read; :mod:`roomcast.config_keys` names them instead.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "AdminSettings",
    "ChannelOptions",
    "ChannelSettings",
    "ClientSettings",
    "EngineSettings",
    "ExamplesSettings",
    "HttpApiSettings",
    "Namespace",
    "NodeSettings",
    "Seconds",
    "ShutdownSettings",
    "TokenSettings",
    "WebSocketSettings",
    "parse_duration",
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> object:
    """Turn a Go-style duration (``"25s"``, ``"1m30s"``, ``"500ms"``) into seconds.

    Numbers pass through as seconds; anything else is returned unchanged for pydantic to reject.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return value
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if "".join(n + u for n, u in parts) != text:
        return value
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TokenSettings(_Section):
    """Keys that verify connection JWTs; at least one is needed unless ``client.insecure``."""

    hmac_secret_key: str = ""
    rsa_public_key: str = ""
    ecdsa_public_key: str = ""
    audience: str = ""
    issuer: str = ""


class ClientSettings(_Section):
    """How client connections are admitted and kept alive."""

    insecure: bool = False
    token: TokenSettings = TokenSettings()
    subscription_token: TokenSettings = TokenSettings()
    allowed_origins: list[str] = []
    ping_interval: Seconds = 25.0
    pong_timeout: Seconds = 8.0
    queue_max_size: int = Field(default=1 << 20, gt=0)
    """Bytes a connection may have queued and unsent before it is disconnected as slow."""
    lag_timeout: Seconds = 2.0
    """How long a publish waits for subscribers more than half ``queue_max_size`` behind; one
    still that far behind afterwards is disconnected as slow."""
    stall_timeout: Seconds = Field(default=0.3, gt=0)
    """How long a connection that far behind may drain nothing before publishes stop waiting
    for it (it is stalled, not lagging): it is then disconnected as slow once its queue
    overflows, and paced again if it drains."""
    allow_anonymous_connect_without_token: bool = False
    channel_limit: int = Field(default=128, gt=0)
    """Channels one connection may be subscribed to at once."""
    expired_close_delay: Seconds = 25.0
    """Grace after a connection's expiry for the client to refresh before it is closed."""
    expired_sub_close_delay: Seconds = 25.0
    """Grace after a subscription's expiry for the client to refresh before it is ended."""
    presence_update_interval: Seconds = 27.0
    """How often a connection refreshes its presence entries (they expire after
    ``engine.presence_ttl``)."""
    stale_close_delay: Seconds = 10.0
    """How long a connection may stay open without sending ``connect``."""


class ChannelOptions(_Section):
    """What clients may do on the channels of one namespace (Centrifugo's option names)."""

    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    history_size: int = Field(default=0, ge=0)
    history_ttl: Seconds = 0.0
    history_meta_ttl: Seconds = 30 * 24 * 3600.0
    """How long a stream's position outlives its last publication (a new epoch after)."""
    force_recovery: bool = False
    allow_recovery: bool = False
    force_positioning: bool = False
    allow_positioning: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_presence_for_anonymous: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_history_for_anonymous: bool = False
    allow_user_limited_channels: bool = False
    allow_tags_filter: bool = False
    """Subscribers may pass a tags filter (``tf``) and receive only the publications whose
    tags it matches; without it, a subscribe with a filter is refused with error 107."""
    channel_regex: str = ""
    """A regular expression (Python's ``re``, searched as Go's ``MatchString`` does: anchor it
    with ``^...$`` to match the whole) that a channel's name after the namespace must match;
    commands on other channels are refused with error 107. Empty: no check."""
    force_recovery_mode: Annotated[
        Literal["stream", "cache"], BeforeValidator(lambda mode: mode or "stream")
    ] = "stream"
    """How a recovering subscriber is served: ``stream`` sends every publication it missed,
    ``cache`` only the channel's latest (when it does not have it yet)."""
    auto_cache_recover: bool = False
    """In cache mode, recover on every subscribe, asked or not (server-side subscriptions
    included): every subscriber gets the channel's latest publication. Needs
    ``force_recovery`` and ``force_recovery_mode = "cache"``."""
    allowed_delta_types: list[Literal["fossil"]] = []
    """Delta types subscribers may negotiate (``delta: "fossil"`` in the SDKs' subscribe
    options). Served with ``delta_publish``; a subscribe asking for a type not listed here is
    declined (its reply has no ``delta``), so the SDK takes whole publications."""
    delta_publish: bool = False
    """Publications of the namespace go as fossil deltas against the previous one to every
    subscriber that negotiated deltas (the first after subscribing goes whole, as does one whose
    delta would not be smaller). Needs ``allowed_delta_types``."""

    @field_validator("channel_regex")
    @classmethod
    def _regex_compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return pattern

    @model_validator(mode="after")
    def _auto_cache_recover_needs_cache_mode(self) -> ChannelOptions:
        if self.auto_cache_recover and not (
            self.force_recovery and self.force_recovery_mode == "cache"
        ):
            raise ValueError(
                'auto_cache_recover needs force_recovery and force_recovery_mode = "cache"'
            )
        return self

    @model_validator(mode="after")
    def _delta_publish_needs_a_delta_type(self) -> ChannelOptions:
        if self.delta_publish and not self.allowed_delta_types:
            raise ValueError('delta_publish needs allowed_delta_types, e.g. ["fossil"]')
        return self

    @model_validator(mode="after")
    def _recovery_needs_history(self) -> ChannelOptions:
        wants_positions = (
            self.force_recovery
            or self.allow_recovery
            or self.force_positioning
            or self.allow_positioning
        )
        if wants_positions and (self.history_size <= 0 or self.history_ttl <= 0):
            raise ValueError(
                "recovery and positioning need history: set history_size and history_ttl"
            )
        return self


class Namespace(ChannelOptions):
    """Channel options for channels named ``<name>:<rest>``."""

    name: str = Field(pattern=r"^[-a-zA-Z0-9_.]{2,}$")


class ChannelSettings(_Section):
    """Channel namespaces and the options of channels without one."""

    without_namespace: ChannelOptions = ChannelOptions()
    namespaces: list[Namespace] = []
    namespace_boundary: str = ":"
    user_boundary: str = "#"
    user_separator: str = ","
    private_prefix: str = "$"
    max_length: int = 255

    @model_validator(mode="after")
    def _unique_namespaces(self) -> ChannelSettings:
        names = [ns.name for ns in self.namespaces]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"namespace names must be unique, repeated: {', '.join(duplicates)}")
        return self


class HttpApiSettings(_Section):
    """The server HTTP API at ``/api``: guarded by ``key`` unless ``insecure``."""

    key: str = ""
    insecure: bool = False


class WebSocketSettings(_Section):
    """Transport limits for every WebSocket endpoint."""

    message_size_limit: int = Field(default=65536, gt=0)
    """Largest frame accepted from a client, in bytes; a larger one closes with 1009."""
    compression: bool = False
    """permessage-deflate; off by default because it costs CPU per recipient."""
    protobuf: bool = True
    """Serve the Centrifuge protocol in Protobuf to clients that ask for it (the
    ``centrifuge-protobuf`` subprotocol, ``?format=protobuf``); off, they are closed with 3506
    and a reason saying so. JSON is always served."""


DEFAULT_HISTORY_URL = "sqlite:///roomcast-data/history.sqlite3"


class EngineSettings(_Section):
    """Which broker and stores to use, by URL scheme (``memory://``, ``sqlite:///path``, ...)."""

    url: str = "memory://"
    """The engine of every role (broker, history, presence) not overridden below:
    ``memory://``, ``redis://``, ``postgresql://`` or ``nats://``."""
    broker: str = ""
    """Overrides ``url`` for the broker only."""
    history: str = ""
    """Overrides ``url`` for history only. When neither is set (``url`` is ``memory://``),
    history lives in SQLite at ``sqlite:///roomcast-data/history.sqlite3``, so it survives a
    restart; ``?synchronous=true`` makes each publish wait for the disk. Opened only when a
    namespace keeps history."""
    presence: str = ""
    """Overrides ``url`` for the presence store only."""
    presence_ttl: Seconds = 60.0
    """Seconds a presence entry outlives its last refresh (the clients of a crashed node
    disappear after it)."""

    @property
    def presence_url(self) -> str:
        """The presence store's URL: ``presence`` if set, else ``url``."""
        return self.presence or self.url

    @property
    def history_url(self) -> str:
        """The history store's URL: ``history`` if set, else ``url`` unless that is the memory
        engine, else the embedded SQLite file."""
        if self.history:
            return self.history
        if not self.url.startswith("memory:"):
            return self.url
        return DEFAULT_HISTORY_URL

    @property
    def broker_url(self) -> str:
        """The broker's URL: ``broker`` if set, else ``url``."""
        return self.broker or self.url


class NodeSettings(_Section):
    """This node in the cluster of nodes that share an engine (see ``roomcast.cluster``)."""

    name: str = ""
    """Human-readable name in ``info`` (Centrifugo's ``node.name``); "" for host and pid."""
    announce_interval: Seconds = Field(default=3.0, gt=0)
    """Seconds between this node's announcements of itself to the others."""
    announce_ttl: Seconds = Field(default=10.0, gt=0)
    """Seconds a node stays in ``info`` after its last announcement (a killed node drops out
    after this)."""
    survey_timeout: Seconds = Field(default=2.0, gt=0)
    """Seconds ``channels`` waits for every live node's answer."""

    @model_validator(mode="after")
    def _ttl_outlives_interval(self) -> NodeSettings:
        if self.announce_ttl <= self.announce_interval:
            raise ValueError("announce_ttl must be longer than announce_interval")
        return self


class ExamplesSettings(_Section):
    """The seed endpoints (echo, chat, secure, stream, methods_*, items, clock)."""

    enabled: bool = True
    secure_token: str = "secret-token"
    stream_interval: Seconds = 1.0
    stream_count: int = Field(default=10, ge=0)
    clock_interval: Seconds = 10.0
    chat_channel: str = "chat"
    """The channel behind ``/ws/{client_id}``; Centrifuge clients may share it."""
    anonymous_chat_channel: str = "chat_anonymous"
    """The channel behind ``/ws/chat``."""


class AdminSettings(_Section):
    """The admin web UI at ``/admin`` (Centrifugo v6's names): off unless ``enabled``, which
    needs a ``password`` to log in with and a ``secret`` that signs admin sessions."""

    enabled: bool = False
    password: str = ""
    secret: str = ""
    """Signs the admin session cookie; give every node the same one, so that a session
    opened on one node is good on the others."""

    @model_validator(mode="after")
    def _enabled_needs_credentials(self) -> AdminSettings:
        missing = [
            name
            for name, value in (("admin.password", self.password), ("admin.secret", self.secret))
            if not value
        ]
        if self.enabled and missing:
            raise ValueError(
                f"admin.enabled needs {' and '.join(missing)}: the password logs in, the "
                "secret (a long random string, the same on every node) signs admin sessions"
            )
        return self


class ShutdownSettings(_Section):
    """How ``roomcast serve`` stops on SIGTERM or Ctrl-C (a second signal stops at once)."""

    timeout: Seconds = 30.0
    """How long the drain may take: client connections are closed in batches spread over
    this time, with the protocol's shutdown code (3001), so SDKs reconnect elsewhere."""
