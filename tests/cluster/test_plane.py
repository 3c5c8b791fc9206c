"""ControlPlane over real brokers: three nodes of one installation discover each other, apply
each other's commands once and in order, answer surveys, and forget a node that left or went
silent. The memory broker's installation is one node.

Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from roomcast.cluster import (
    Command,
    ControlPlane,
    DisconnectCommand,
    NodeInfo,
    SurveyIncomplete,
    Target,
    UnsubscribeCommand,
)
from roomcast.engines.base import Broker
from roomcast.engines.memory import MemoryBroker

WAIT = 10.0
TTL = 1.5
INTERVAL = 0.4


async def until(condition: Callable[[], bool], what: str, seconds: float = WAIT) -> float:
    """Seconds until ``condition()`` held; fails naming ``what`` after ``seconds``."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < seconds, f"no {what} within {seconds}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - began


@dataclass
class Member:
    """One node: its broker, its plane and the commands it applied."""

    broker: Broker
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    applied: list[Command] = field(default_factory=list)
    plane: ControlPlane | None = None

    def describe(self) -> NodeInfo:
        return NodeInfo(self.uid, f"node-{self.uid[:4]}", "test", 0, len(self.applied), 0, 0, 0)

    async def apply(self, command: Command) -> None:
        await asyncio.sleep(0.001 if isinstance(command, DisconnectCommand) else 0.02)
        self.applied.append(command)

    async def start(self, interval: float = INTERVAL) -> Member:
        self.plane = ControlPlane(
            self.broker,
            uid=self.uid,
            describe=self.describe,
            apply=self.apply,
            answers={"whoami": lambda body: self.uid.encode() + body},
            announce_interval=interval,
            announce_ttl=TTL,
            survey_timeout=1.0,
        )
        await self.broker.start(lambda channel, event: None, on_control=self.plane.receive)
        await self.plane.start()
        return self

    @property
    def control(self) -> ControlPlane:
        assert self.plane is not None
        return self.plane

    def sees(self) -> set[str]:
        return {node.uid for node in self.control.nodes()}


@pytest.fixture
async def three(make_broker: Callable[[], Broker]) -> AsyncIterator[list[Member]]:
    # A long interval: discovery must not wait for the periodic announcement.
    members = [await Member(make_broker()).start(interval=30.0) for _ in range(3)]
    yield members
    for member in members:
        await member.control.stop()
        await member.broker.close()


async def test_nodes_discover_each_other_without_waiting_for_the_interval(
    three: list[Member],
) -> None:
    everyone = {m.uid for m in three}
    for member in three:
        await until(lambda m=member: m.sees() == everyone, "full view")  # type: ignore[misc]
        assert member.control.nodes()[0].uid == member.uid  # this node first


async def test_a_command_is_applied_here_when_sent_and_once_on_every_other_node(
    three: list[Member],
) -> None:
    sender, *others = three
    await until(lambda: all(len(m.sees()) == 3 for m in three), "full view")
    commands = [UnsubscribeCommand(Target("alice"), f"c{n}") for n in range(10)]
    for command in commands:
        await sender.control.send(command)
    assert sender.applied == commands  # applied here before send returned
    for member in others:
        await until(lambda m=member: len(m.applied) >= 10, "commands")  # type: ignore[misc]
    await asyncio.sleep(0.3)  # nothing more, nothing twice (the sender ignores its echo)
    for member in three:
        assert member.applied == commands  # in order, each once


async def test_a_survey_gathers_every_live_nodes_answer(three: list[Member]) -> None:
    asker = three[0]
    await until(lambda: len(asker.sees()) == 3, "full view")
    replies = await asker.control.survey("whoami", b"?")
    assert replies == {m.uid: m.uid.encode() + b"?" for m in three}
    with pytest.raises(KeyError):
        await asker.control.survey("no such subject")


async def test_a_stopping_node_leaves_the_view_at_once(three: list[Member]) -> None:
    watcher, _, leaver = three
    await until(lambda: len(watcher.sees()) == 3, "full view")
    await leaver.control.stop()
    seconds = await until(lambda: leaver.uid not in watcher.sees(), "leave")
    assert seconds < TTL / 2, f"left after {seconds:.2f}s: it said so, no TTL needed"


async def test_a_silent_node_fails_surveys_then_drops_out_after_the_ttl(
    make_broker: Callable[[], Broker],
) -> None:
    members = [await Member(make_broker()).start() for _ in range(3)]
    asker, _, silent = members
    try:
        await until(lambda: len(asker.sees()) == 3, "full view")
        # Killed: its broker goes, it never says it leaves.
        await silent.broker.close()
        with pytest.raises(SurveyIncomplete) as caught:
            await asker.control.survey("whoami")
        assert caught.value.missing == [silent.uid]
        seconds = await until(lambda: silent.uid not in asker.sees(), "drop-out", TTL * 3)
        assert seconds <= TTL + INTERVAL + 1.0
        replies = await asker.control.survey("whoami")
        assert set(replies) == {members[0].uid, members[1].uid}
    finally:
        for member in members:
            await member.control.stop()
            await member.broker.close()


async def test_what_no_node_can_read_is_dropped_and_counted(three: list[Member]) -> None:
    sender, receiver, _ = three
    await until(lambda: len(receiver.sees()) == 3, "full view")
    before = receiver.control.stats.dropped
    await sender.broker.publish_control(b"not a control message")
    await sender.control.send(UnsubscribeCommand(Target("u"), "after-garbage"))
    await until(lambda: bool(receiver.applied), "the command after the garbage")
    assert receiver.control.stats.dropped == before + 1


async def test_a_memory_broker_is_a_cluster_of_one() -> None:
    member = await Member(MemoryBroker()).start()
    try:
        assert member.sees() == {member.uid}
        await member.control.send(UnsubscribeCommand(Target("u"), "c"))
        assert member.applied == [UnsubscribeCommand(Target("u"), "c")]  # once: echo ignored
        assert await member.control.survey("whoami") == {member.uid: member.uid.encode()}
        assert member.control.stats.announcements >= 1
    finally:
        await member.control.stop()
        await member.broker.close()
