"""The rooms one plain socket is in: Node subscriptions, presence entries, join and leave.

A room is a channel. Joining one subscribes the socket on the Node, so it receives what is
published to the channel on every node; in a namespace with ``presence`` the socket enters
the channel's presence (with the engine's ``engine.presence_ttl``, refreshed every
``client.presence_update_interval`` as a Centrifuge session's entries are), and in one with
``join_leave`` its join and leave are announced to the channel's Centrifuge subscribers. So a
room shared by plain sockets and SDK clients looks the same from both sides.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from roomcast.engines.base import PresenceStore
from roomcast.errors import ConfigurationError, EngineError
from roomcast.node import Node, Subscriber
from roomcast.publication import ClientInfo, Join, Leave
from roomcast.session.namespaces import ChannelRules
from roomcast.settings import ChannelOptions, Settings

__all__ = ["RoomMembership", "RoomServices", "room_options"]

logger = logging.getLogger("roomcast.sockets")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomServices:
    """What every plain socket of one hub shares."""

    settings: Settings
    node: Node
    presence: PresenceStore
    channels: ChannelRules


def room_options(channels: ChannelRules, room: str) -> ChannelOptions:
    """The options of the namespace ``room`` belongs to.

    Raises:
        ConfigurationError: ``room`` is not a valid channel name, or names a namespace that
            ``channel.namespaces`` does not define.
    """
    resolved = channels.resolve(room)
    if resolved is None:
        raise ConfigurationError(
            f"room {room!r} is not a channel: its name is empty, too long, or in a namespace "
            "that channel.namespaces does not define"
        )
    return resolved.options


class RoomMembership:
    """The rooms of one socket, which the Node delivers to as ``subscriber``.

    Args:
        subscriber: the socket.
        info: who the socket is, as presence and join/leave events show it.
        services: what the hub shares.
    """

    def __init__(self, subscriber: Subscriber, info: ClientInfo, services: RoomServices) -> None:
        self._subscriber = subscriber
        self._info = info
        self._services = services
        self._rooms: dict[str, ChannelOptions] = {}
        self._presence_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms joined now."""
        return frozenset(self._rooms)

    async def join(self, room: str) -> None:
        """Subscribe on the node, then enter presence and announce the join as the room's
        namespace says; nothing if already in the room. Presence and join failures are
        logged, not raised: the socket is in the room all the same.

        Raises:
            ConfigurationError: see :func:`room_options`.
            EngineUnavailable: the broker could not subscribe; the room is not joined.
        """
        if room in self._rooms:
            return
        options = room_options(self._services.channels, room)
        await self._services.node.subscribe(room, self._subscriber)
        self._rooms[room] = options
        try:
            if options.presence:
                self._schedule_presence_refresh()  # first, so a failed add is retried by it
                await self._services.presence.add(room, self._info, self._presence_ttl)
            if options.join_leave:
                await self._services.node.publish_event(room, Join(self._info))
        except EngineError as exc:
            logger.warning("presence of %s in %s not recorded: %s", self._info.client, room, exc)

    async def leave(self, room: str) -> None:
        """Unsubscribe from ``room``, leave its presence and announce the leave; nothing if
        not in it. Never raises for an engine failure."""
        options = self._rooms.pop(room, None)
        if options is None:
            return
        node = self._services.node
        await node.unsubscribe(room, self._subscriber)
        try:
            if options.presence:
                await self._services.presence.remove(room, self._info.client)
            if options.join_leave:
                await node.publish_event(room, Leave(self._info))
        except EngineError as exc:
            logger.warning("leave of %s from %s not recorded: %s", self._info.client, room, exc)
        if not any(o.presence for o in self._rooms.values()):
            self._cancel_presence_refresh()

    async def leave_all(self) -> None:
        """Leave every room; never raises for an engine failure."""
        self._cancel_presence_refresh()
        for room in list(self._rooms):
            await self.leave(room)

    # --- presence refresh -----------------------------------------------------------------------

    @property
    def _presence_ttl(self) -> float:
        return self._services.settings.engine.presence_ttl

    def _schedule_presence_refresh(self) -> None:
        if self._presence_timer is None:
            interval = self._services.settings.client.presence_update_interval
            self._presence_timer = asyncio.get_running_loop().call_later(
                interval, self._refresh_presence
            )

    def _cancel_presence_refresh(self) -> None:
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None

    def _refresh_presence(self) -> None:
        self._presence_timer = None
        rooms = [room for room, options in self._rooms.items() if options.presence]
        if rooms:
            self._spawn(self._add_presence(rooms))
            self._schedule_presence_refresh()

    async def _add_presence(self, rooms: list[str]) -> None:
        try:
            for room in rooms:
                await self._services.presence.add(room, self._info, self._presence_ttl)
        except EngineError as exc:
            logger.warning("presence of %s not refreshed: %s", self._info.client, exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
