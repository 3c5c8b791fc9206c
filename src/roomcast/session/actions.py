"""What a control command of the cluster does to this node's connections.

Every node applies each command (:mod:`roomcast.cluster.messages`) to the sessions of its own
registry that the command's target names: :func:`apply_command`. Beside it,
:func:`subscribe_option_error`, the check every option of a server-side subscribe passes on the
node that sends the command, so that a request no node could honour is refused where it was
made, naming the option.
"""

from __future__ import annotations

import logging
import time
from typing import TypeAlias

import msgspec

from roomcast.cluster import (
    Command,
    DisconnectCommand,
    RefreshCommand,
    SubscribeCommand,
    SubscribeOverride,
    Target,
    UnsubscribeCommand,
)
from roomcast.errors import EngineError
from roomcast.protocol import Disconnect
from roomcast.publication import StreamPosition
from roomcast.session.connection import Session
from roomcast.session.features import OVERRIDABLE
from roomcast.session.namespaces import ResolvedChannel, history_options
from roomcast.session.registry import Registry
from roomcast.session.subscriptions import ServerSubscribeOptions

__all__ = ["Sessions", "apply_command", "overrides_of", "subscribe_option_error", "targets"]

logger = logging.getLogger("roomcast.session")

Sessions: TypeAlias = Registry[Session]


def targets(registry: Sessions, target: Target) -> list[Session]:
    """The sessions of ``registry`` that ``target`` names: ``target.user``'s, only the one
    with client ID ``target.client`` when given; every one with ``all_users`` and no user."""
    everyone = target.all_users and not target.user
    if target.client:
        session = registry.get(target.client)
        if session is None or not (everyone or session.user == target.user):
            return []
        return [session]
    return registry.members() if everyone else registry.of_user(target.user)


async def apply_command(registry: Sessions, command: Command) -> None:
    """Apply ``command`` to the sessions it targets. A failure on one session does not stop
    the others; the first engine failure is raised after.

    Raises:
        EngineError: a session's subscribe could not read the channel's history.
    """
    failure: EngineError | None = None
    for session in targets(registry, command.target):
        try:
            await _apply_to(session, command)
        except EngineError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


async def _apply_to(session: Session, command: Command) -> None:
    match command:
        case DisconnectCommand():
            if session.client not in command.whitelist:
                session.disconnect(Disconnect(command.code, command.reason))
        case UnsubscribeCommand():
            await session.server_unsubscribe(command.channel)
        case RefreshCommand():
            session.server_refresh(
                expired=command.expired,
                expire_at=command.expire_at,
                conn_info=command.conn_info,
            )
        case SubscribeCommand():
            since = command.recover_since
            options = ServerSubscribeOptions(
                chan_info=command.chan_info,
                data=command.data,
                expire_at=command.expire_at,
                recover_since=None if since is None else StreamPosition(since.offset, since.epoch),
                override=overrides_of(command.override),
            )
            error = await session.server_subscribe(command.channel, options)
            if error is not None:
                logger.info(
                    "server subscribe of client %s to %s refused: %s",
                    session.client,
                    command.channel,
                    error.message,
                )


def overrides_of(override: SubscribeOverride | None) -> dict[str, bool]:
    """The namespace options an override sets, by name."""
    if override is None:
        return {}
    return {
        name: value
        for name in sorted(OVERRIDABLE)
        if (value := getattr(override, name)) is not None
    }


def subscribe_option_error(
    resolved: ResolvedChannel,
    *,
    override: dict[str, bool],
    recover_since: StreamPosition | None,
    expire_at: int,
    chan_info: bytes,
    data: bytes,
) -> str | None:
    """Why a server-side subscribe with these options cannot be honoured, naming the option;
    None when it can."""
    unknown = sorted(set(override) - OVERRIDABLE)
    if unknown:
        return f"override: unknown option(s) {', '.join(unknown)}"
    options = resolved.options.model_copy(update=override)
    keeps = history_options(options) is not None
    for name in ("force_recovery", "force_positioning"):
        if override.get(name) and not keeps:
            return f"override.{name} needs history in the channel's namespace"
    if recover_since is not None and not (options.force_recovery or options.allow_recovery):
        return (
            "recover_since needs a recoverable subscription: force_recovery or allow_recovery "
            "in the namespace, or override.force_recovery"
        )
    if expire_at and expire_at <= time.time():
        return f"expire_at {expire_at} is already past"
    for name, value in (("info", chan_info), ("data", data)):
        if value and not is_json(value):
            return f"{name} must be JSON"
    return None


def is_json(data: bytes) -> bool:
    """Whether ``data`` is one JSON value."""
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False
    return True
