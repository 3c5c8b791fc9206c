"""Driving the seed endpoints' anonymous chat (``/ws/chat``) from tests."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection

from tests.support.wsclient import TIMEOUT, recv_until

__all__ = ["chat_across"]


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
