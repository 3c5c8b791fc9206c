"""What a command handler returns: its outcome, which only the session's dispatcher writes.

A handler never writes to the connection. It returns one of:

* a result (``protocol.SubscribeResult``, ...): replied with the command's id;
* :class:`ReplyThen`: a result to reply, and work that must run once the reply is queued
  (a subscription releases what it kept aside and announces its join only after the client
  has the subscribe reply);
* an :class:`~roomcast.protocol.Error`: replied with the command's id, the connection stays;
* a :class:`~roomcast.protocol.Disconnect`: the connection ends with it, nothing is replied;
* None: nothing to reply (``send``, or a session that closed meanwhile).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from roomcast import protocol
from roomcast.protocol import Disconnect, Error

__all__ = ["Outcome", "ReplyThen", "Result", "encode_answer"]

Result: TypeAlias = (
    protocol.ConnectResult
    | protocol.RefreshResult
    | protocol.SubscribeResult
    | protocol.SubRefreshResult
    | protocol.UnsubscribeResult
    | protocol.PublishResult
    | protocol.PresenceResult
    | protocol.PresenceStatsResult
    | protocol.HistoryResult
    | protocol.RPCResult
)
"""What a successful command replies; its type names the reply's field."""


@dataclass(frozen=True, slots=True)
class ReplyThen:
    """Reply ``result``, then await ``then``; nothing ``then`` sends can overtake the reply."""

    result: Result
    then: Callable[[], Awaitable[None]]


Outcome: TypeAlias = Result | ReplyThen | Error | Disconnect | None
"""Everything a handler may return; see the module docstring."""

_REPLY_FIELDS: Final[dict[type[Any], str]] = {
    protocol.ConnectResult: "connect",
    protocol.RefreshResult: "refresh",
    protocol.SubscribeResult: "subscribe",
    protocol.SubRefreshResult: "sub_refresh",
    protocol.UnsubscribeResult: "unsubscribe",
    protocol.PublishResult: "publish",
    protocol.PresenceResult: "presence",
    protocol.PresenceStatsResult: "presence_stats",
    protocol.HistoryResult: "history",
    protocol.RPCResult: "rpc",
}


def encode_answer(
    command_id: int, answer: Result | Error, codec: protocol.ClientCodec = protocol.JSON
) -> str | bytes:
    """The reply to command ``command_id`` in ``codec``: ``answer`` in its result field, or as
    its error."""
    if isinstance(answer, Error):
        return codec.encode_error_reply(command_id, answer)
    fields: dict[str, Any] = {_REPLY_FIELDS[type(answer)]: answer}
    return codec.encode_reply(protocol.Reply(id=command_id, **fields))
