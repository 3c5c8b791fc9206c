"""Registry: connected members by client ID and by user; real sessions, and plain objects with
nothing but a client and a user, which is all a registry reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from roomcast.hub import Hub
from roomcast.protocol import DisconnectCode
from roomcast.session.connection import Session
from roomcast.session.registry import Connected, Registry
from roomcast.settings import Settings
from roomcast.writer import Close, Frame, Writer

MakeSession = Callable[[str], Session]


async def discard(frame: Frame) -> None:
    """A transport nobody listens to."""


@pytest.fixture
async def make_session() -> AsyncIterator[MakeSession]:
    """Real sessions of one hub, as if each had connected as ``user``; closed afterwards."""
    hub = Hub(Settings.load(client={"insecure": True}))
    made: list[Session] = []

    def make(user: str) -> Session:
        writer = Writer(discard, max_queue_bytes=1024, overflow=Close(DisconnectCode.SLOW, "slow"))
        session = Session(hub.services, writer)
        session.user = user
        made.append(session)
        return session

    yield make
    for session in made:
        await session.closed()


def test_an_empty_registry() -> None:
    registry: Registry[Session] = Registry()
    assert registry.num_clients == 0
    assert registry.num_users == 0
    assert registry.of_user("alice") == []
    assert registry.get("nobody") is None


async def test_add_indexes_by_client_and_user(make_session: MakeSession) -> None:
    registry: Registry[Session] = Registry()
    a1, a2, b = make_session("alice"), make_session("alice"), make_session("bob")
    for session in (a1, a2, b):
        registry.add(session)
    assert registry.get(a1.client) is a1
    assert registry.of_user("alice") == [a1, a2]
    assert registry.of_user("bob") == [b]
    assert registry.num_clients == 3
    assert registry.num_users == 2


async def test_anonymous_sessions_count_as_one_user(make_session: MakeSession) -> None:
    registry: Registry[Session] = Registry()
    first, second = make_session(""), make_session("")
    registry.add(first)
    registry.add(second)
    assert registry.of_user("") == [first, second]
    assert registry.num_users == 1


async def test_remove_forgets_the_session_and_an_emptied_user(make_session: MakeSession) -> None:
    registry: Registry[Session] = Registry()
    a1, a2 = make_session("alice"), make_session("alice")
    registry.add(a1)
    registry.add(a2)
    registry.remove(a1)
    assert registry.get(a1.client) is None
    assert registry.of_user("alice") == [a2]
    assert registry.num_users == 1
    registry.remove(a2)
    assert registry.of_user("alice") == []
    assert (registry.num_clients, registry.num_users) == (0, 0)


async def test_remove_ignores_unknown_and_repeated_sessions(make_session: MakeSession) -> None:
    registry: Registry[Session] = Registry()
    a, stranger = make_session("alice"), make_session("alice")
    registry.add(a)
    registry.remove(stranger)
    assert registry.of_user("alice") == [a]
    registry.remove(a)
    registry.remove(a)
    assert registry.num_clients == 0


async def test_of_user_returns_a_copy(make_session: MakeSession) -> None:
    registry: Registry[Session] = Registry()
    a = make_session("alice")
    registry.add(a)
    registry.of_user("alice").clear()
    assert registry.of_user("alice") == [a]


@dataclass(frozen=True)
class Member:
    """Something with a client and a user, and nothing else."""

    client: str
    user: str


def test_a_plain_member_is_what_a_registry_needs() -> None:
    member: Connected = Member("c1", "alice")
    registry: Registry[Connected] = Registry()
    registry.add(member)
    assert registry.get("c1") is member
    assert registry.of_user("alice") == [member]


def test_plain_members_by_client_and_user() -> None:
    registry: Registry[Member] = Registry()
    a1, a2, b, anonymous = (
        Member("a1", "alice"),
        Member("a2", "alice"),
        Member("b", "bob"),
        Member("x", ""),
    )
    for member in (a1, a2, b, anonymous):
        registry.add(member)
    assert registry.of_user("alice") == [a1, a2]
    assert registry.of_user("") == [anonymous]
    assert (registry.num_clients, registry.num_users) == (4, 3)
    registry.remove(a1)
    registry.remove(Member("nobody", "alice"))
    assert registry.of_user("alice") == [a2]
    assert registry.get("a1") is None
    assert (registry.num_clients, registry.num_users) == (3, 3)
