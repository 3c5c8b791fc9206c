"""The control plane: one node's side of the conversation between the nodes of an installation.

It rides the broker's control channel (``Broker.publish_control``; the broker hands what
arrives to :meth:`ControlPlane.receive`) and does three things:

- **commands**: :meth:`ControlPlane.send` applies a command to this node's connections and
  publishes it; every other node applies it to its own when it arrives, one command after the
  other in arrival order. A node ignores what it sent itself (the broker loops it back).
- **the cluster view**: the node announces itself (:class:`NodeInfo`) when it starts, every
  ``announce_interval`` seconds, and to a node it hears of for the first time; it says
  :class:`Leaving` when it stops. :meth:`ControlPlane.nodes` is this node and every node heard
  from within ``announce_ttl`` seconds.
- **surveys**: :meth:`ControlPlane.survey` asks every live node a question (``channels``)
  and gathers the answers, this node's included, within ``survey_timeout`` seconds.

Delivery is the broker's: at most once, in order per sender. A command published while a
node's link to the engine is down does not reach that node; announcements resume by
themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec

from roomcast.cluster.messages import (
    Body,
    Command,
    DisconnectCommand,
    Leaving,
    NodeInfo,
    RefreshCommand,
    SubscribeCommand,
    SurveyReply,
    SurveyRequest,
    UnsubscribeCommand,
    decode,
    encode,
)
from roomcast.cluster.nodes import NodeTable
from roomcast.cluster.survey import Surveys
from roomcast.engines.base import Broker
from roomcast.errors import EngineError, EngineUnavailable

__all__ = ["CommandHandler", "ControlPlane", "ControlStats", "SurveyAnswer"]

logger = logging.getLogger("roomcast.cluster")

CommandHandler = Callable[[Command], Awaitable[None]]
"""Applies a command to this node's own connections."""

SurveyAnswer = Callable[[bytes], bytes]
"""This node's answer to a survey's body."""


@dataclass(slots=True)
class ControlStats:
    """Running totals of what one node sent and received on the control channel."""

    sent: int = 0
    sent_bytes: int = 0
    announcements: int = 0
    announcement_bytes: int = 0
    received: int = 0
    received_bytes: int = 0
    dropped: int = 0
    """Messages of another protocol version, or undecodable."""


class ControlPlane:
    """This node's control plane (see the module doc).

    Args:
        broker: carries the messages; start it with ``on_control=plane.receive``.
        uid: this node's unique id.
        describe: this node's announcement, as of now.
        apply: applies a command to this node's connections.
        answers: this node's answer to each survey subject it knows.
        announce_interval: seconds between announcements.
        announce_ttl: seconds a node stays live after its last announcement.
        survey_timeout: seconds a survey waits for the other nodes' answers.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        uid: str,
        describe: Callable[[], NodeInfo],
        apply: CommandHandler,
        answers: dict[str, SurveyAnswer],
        announce_interval: float = 3.0,
        announce_ttl: float = 10.0,
        survey_timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uid = uid
        self.stats = ControlStats()
        self._broker = broker
        self._describe = describe
        self._apply = apply
        self._answers = answers
        self._interval = announce_interval
        self._survey_timeout = survey_timeout
        self._table = NodeTable(announce_ttl, clock)
        self._surveys = Surveys()
        self._commands: asyncio.Queue[Command] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []

    # --- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Announce this node now and every interval, and apply others' commands; the broker
        must be started already. Never raises: a failed announcement is retried next time."""
        self._loops = [
            asyncio.create_task(self._announce_forever(), name="roomcast-announce"),
            asyncio.create_task(self._apply_forever(), name="roomcast-control-commands"),
        ]

    async def stop(self) -> None:
        """Stop every task, then tell the others this node leaves (best effort).

        The tasks stop first so that no announcement of this node follows its farewell."""
        started = bool(self._loops)
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops = []
        if started:
            with contextlib.suppress(EngineError):
                await self._publish(Leaving())

    # --- commands ---------------------------------------------------------------------------------

    async def send(self, command: Command) -> None:
        """Publish ``command`` to every other node, then apply it to this node's connections.

        Raises:
            EngineUnavailable: the broker could not take it; nothing was applied here (some
                other nodes may have received it: the commands are safe to repeat).
        """
        await self._publish(command)
        await self._apply(command)

    # --- the cluster view -------------------------------------------------------------------------

    def nodes(self) -> list[NodeInfo]:
        """This node, as of now, then every other live node's last announcement."""
        return [self._describe(), *(n for n in self._table.live() if n.uid != self.uid)]

    async def survey(self, subject: str, body: bytes = b"") -> dict[str, bytes]:
        """Every live node's answer to ``subject``, by uid, this node's included.

        Raises:
            KeyError: this node answers no such subject.
            EngineUnavailable: the broker could not take the question.
            SurveyIncomplete: a live node did not answer within ``survey_timeout``.
        """
        answer = self._answers[subject]
        others = {n.uid for n in self._table.live() if n.uid != self.uid}
        if not others:
            return {self.uid: answer(body)}
        async with self._surveys.open(others) as survey_id:
            await self._publish(SurveyRequest(survey_id, subject, body))
            mine = answer(body)
            replies = await self._surveys.replies(survey_id, subject, self._survey_timeout)
        replies[self.uid] = mine
        return replies

    # --- receiving ------------------------------------------------------------------------------

    def receive(self, payload: bytes) -> None:
        """The broker's control handler: route one message; never raises, never blocks."""
        stats = self.stats
        stats.received += 1
        stats.received_bytes += len(payload)
        try:
            decoded = decode(payload)
        except msgspec.DecodeError as exc:
            stats.dropped += 1
            logger.debug("dropped a control message this version cannot read: %s", exc)
            return
        if decoded is None:
            stats.dropped += 1
            logger.debug("dropped a control message of another protocol version")
            return
        origin, body = decoded
        if origin == self.uid:
            return
        match body:
            case NodeInfo():
                if body.uid == origin and self._table.heard(body):
                    self._spawn(self._announce_quietly())  # a newcomer learns of us at once
            case Leaving():
                self._table.forget(origin)
            case DisconnectCommand() | SubscribeCommand() | UnsubscribeCommand() | RefreshCommand():
                self._commands.put_nowait(body)
            case SurveyRequest():
                self._spawn(self._answer(body, origin))
            case SurveyReply():
                if body.to == self.uid:
                    self._surveys.reply(body.id, origin, body.body)

    # --- inside ---------------------------------------------------------------------------------

    async def _publish(self, body: Body) -> None:
        payload = encode(self.uid, body)
        await self._broker.publish_control(payload)
        self.stats.sent += 1
        self.stats.sent_bytes += len(payload)
        if isinstance(body, NodeInfo):
            self.stats.announcements += 1
            self.stats.announcement_bytes += len(payload)

    async def _announce_quietly(self) -> None:
        try:
            await self._publish(self._describe())
        except EngineError as exc:
            logger.debug("announcement not sent: %s", exc)

    async def _announce_forever(self) -> None:
        while True:
            await self._announce_quietly()
            await asyncio.sleep(self._interval)

    async def _apply_forever(self) -> None:
        while True:
            command = await self._commands.get()
            try:
                await self._apply(command)
            except EngineError as exc:
                logger.warning("control command %s not applied: %s", type(command).__name__, exc)
            except Exception:
                logger.exception("control command %s failed", type(command).__name__)

    async def _answer(self, request: SurveyRequest, asker: str) -> None:
        answer = self._answers.get(request.subject)
        if answer is None:
            logger.debug("no answer to survey subject %r", request.subject)
            return
        try:
            await self._publish(SurveyReply(request.id, asker, answer(request.body)))
        except EngineUnavailable as exc:
            logger.debug("survey %s not answered: %s", request.subject, exc)
        except EngineError as exc:  # refused: the answer is too big for the engine, say
            logger.warning("survey %s not answered: %s", request.subject, exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
