"""Driving the seed chats from tests: the anonymous one (``/ws/chat``) and the numbered one
(``/ws/{client_id}``, which ``examples/rooms_app.py`` serves with the same strings)."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection

from tests.support.wsclient import TIMEOUT, recv_until

__all__ = ["chat_across", "client_id_of", "numbered_chat_across"]


def _said_by_one(message: str | bytes) -> bool:
    return str(message).startswith("Client says: from one ")


async def chat_across(
    one: ClientConnection, other: ClientConnection, seconds: float = TIMEOUT
) -> None:
    """What ``one`` chat member says reaches ``other``, and the other way round; fails if
    either message does not arrive within ``seconds``. ``one`` repeats itself until ``other``
    hears it: a member's subscription may not be in place on every node yet."""
    sent = 0

    async def say_from_one() -> None:
        nonlocal sent
        sent += 1
        await one.send(f"from one {sent}")

    await say_from_one()
    await recv_until(other, _said_by_one, seconds, say_from_one)
    await other.send("from the other")
    await recv_until(one, lambda m: m == "Client says: from the other", seconds)


def client_id_of(ws: ClientConnection) -> int:
    """The ``client_id`` of a connection to ``/ws/{client_id}``."""
    return int(ws.request.path.rsplit("/", 1)[1]) if ws.request else -1


async def numbered_chat_across(
    one: ClientConnection, other: ClientConnection, seconds: float = TIMEOUT
) -> None:
    """As :func:`chat_across`, on the numbered chat: ``other`` hears
    ``Client #<one's id> says: ...`` and ``one`` hears ``Client #<other's id> says: ...``."""
    one_id, other_id = client_id_of(one), client_id_of(other)
    sent = 0

    async def say_from_one() -> None:
        nonlocal sent
        sent += 1
        await one.send(f"from one {sent}")

    prefix = f"Client #{one_id} says: from one "
    await say_from_one()
    await recv_until(other, lambda m: str(m).startswith(prefix), seconds, say_from_one)
    await other.send("from the other")
    await recv_until(one, lambda m: m == f"Client #{other_id} says: from the other", seconds)
