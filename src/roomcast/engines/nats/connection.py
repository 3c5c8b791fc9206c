"""How the NATS engines reach NATS: the names they use there, the connection that reconnects by
itself, reading a stream's subject, and the translation of nats-py's errors.

Names, under a prefix (default ``roomcast``; letters, digits, ``_`` and ``-`` only)::

    <prefix>.broker.<token>      core NATS subject of a channel's events (NatsBroker)
    <prefix>.history.<token>     subject of a channel's stream in the JetStream stream
                                 <prefix>_history (NatsHistoryStore), republished by the
                                 server to <prefix>.broker.<token> once stored
    <token>.<client token>       key of a presence entry in the KV bucket <prefix>_presence

A channel name may hold characters a subject cannot (``.``, ``*``, ``>``, whitespace), so
``<token>`` is the channel's UTF-8 bytes in unpadded base64url (``-`` and ``_`` for ``+``
and ``/``), which is also a valid KV key; the empty name is ``=``, which base64 never yields.

Every connection reconnects by itself, forever, waiting ``backoff`` seconds after the first
failed attempt and doubling up to ``max_backoff``; it never buffers while disconnected
(``pending_size=0``), so a call made then fails at once with ``EngineUnavailable``; a call
into a link that went silent fails after the URL's ``timeout``. The URL is :mod:`.url`'s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client, Server
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from roomcast.engines.nats.url import NatsURL
from roomcast.errors import EngineError, EngineUnavailable

__all__ = [
    "channel_token",
    "close_quietly",
    "connect",
    "fetch_subject",
    "is_not_found",
    "token_channel",
    "translate_errors",
]

logger = logging.getLogger("roomcast.engines.nats")

_EMPTY_TOKEN: Final = "="
_FETCH_BATCH: Final = 256
_HAS_RECONNECT_HANDLER: Final = (
    "reconnect_to_server_handler" in inspect.signature(Client.connect).parameters
)
_STREAM_NOT_FOUND: Final = 10059  # JetStream: stream not found


def channel_token(channel: str) -> str:
    """The subject token (and KV key part) of ``channel``: reversible, see the module doc."""
    if not channel:
        return _EMPTY_TOKEN
    return base64.urlsafe_b64encode(channel.encode()).rstrip(b"=").decode("ascii")


def token_channel(token: str) -> str:
    """The channel whose token is ``token``.

    Raises:
        ValueError: ``token`` is no channel's token.
    """
    if token == _EMPTY_TOKEN:
        return ""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return raw.decode()


@contextlib.contextmanager
def translate_errors(what: str, operation: str, where: str) -> Iterator[None]:
    """Turn what nats-py raises into ``EngineUnavailable`` (``EngineError`` for a too large
    message, which no retry fixes), naming the engine, the operation and the servers."""
    try:
        yield
    except nats.errors.MaxPayloadError as exc:
        raise EngineError(
            f"the {what} cannot {operation}: the message exceeds the NATS server's max_payload"
        ) from exc
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise EngineUnavailable(
            f"the {what} cannot {operation}: NATS at {where} failed: "
            f"{type(exc).__name__}: {exc}".rstrip(": ")
        ) from exc


def is_not_found(exc: nats.js.errors.APIError) -> bool:
    """Whether a JetStream API error says the stream does not exist."""
    return exc.err_code == _STREAM_NOT_FOUND


async def connect(
    url: NatsURL,
    what: str,
    *,
    backoff: float = 0.1,
    max_backoff: float = 5.0,
    on_disconnected: Callable[[], None] | None = None,
    on_reconnected: Callable[[], None] | None = None,
) -> Client:
    """A connected nats-py client that reconnects forever with capped exponential backoff.

    The callbacks run on the event loop: ``on_reconnected`` once the client has subscribed
    again to every subject it held and the server confirmed it (a PING answered).

    Raises:
        EngineUnavailable: every server refused the connection, or none connected within
            ``url.timeout`` seconds per server; nothing is left open.
    """
    client = Client()
    failed: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
    attempts: list[Exception] = []

    async def error_cb(exc: Exception) -> None:
        if not failed.done():
            # While connecting: give up once every server failed once, not at the first.
            attempts.append(exc)
            if len(attempts) >= len(url.servers):
                failed.set_result(exc)
        else:
            logger.debug("NATS %s: %s: %s", what, type(exc).__name__, exc)

    async def disconnected_cb() -> None:
        if on_disconnected is not None:
            on_disconnected()

    async def reconnected_cb() -> None:
        if on_reconnected is not None:
            on_reconnected()

    def next_server(servers: list[Server], info: dict[str, Any]) -> tuple[Server | None, float]:
        # nats-py waits a constant time between attempts; this makes it a capped exponential
        # backoff, counted from the last successful connection to the least tried server.
        server = min(servers, key=lambda s: s.reconnects)
        return server, min(backoff * 2**server.reconnects, max_backoff)

    options: dict[str, Any] = {}
    if _HAS_RECONNECT_HANDLER:
        options["reconnect_to_server_handler"] = next_server
    else:  # pragma: no cover - nats-py before the reconnect handler: a constant wait
        options["reconnect_time_wait"] = max(1, round(max_backoff))
    connecting = asyncio.ensure_future(
        client.connect(
            list(url.servers),
            name=f"roomcast {what}",
            error_cb=error_cb,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            connect_timeout=max(1, round(url.timeout)),
            ping_interval=10,
            max_outstanding_pings=2,
            pending_size=0,  # never buffer while disconnected: fail the call instead
            **options,
        )
    )
    try:
        waited: set[asyncio.Future[Any]] = {connecting, failed}
        done, _ = await asyncio.wait(
            waited,
            timeout=url.timeout * len(url.servers),  # each server gets one attempt
            return_when=asyncio.FIRST_COMPLETED,
        )
        if connecting not in done:
            reason = failed.result() if failed.done() else TimeoutError("no answer")
            raise EngineUnavailable(
                f"the {what} cannot connect: NATS at {url.where} failed: "
                f"{type(reason).__name__}: {reason}"
            )
        connecting.result()
    except BaseException:
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        with contextlib.suppress(Exception):
            await client.close()
        raise
    if not failed.done():
        failed.set_result(RuntimeError("connected"))  # later errors are only logged
    return client


async def close_quietly(client: Client | None) -> None:
    """Close ``client`` ignoring errors: it is being let go of."""
    if client is not None:
        with contextlib.suppress(Exception):
            await client.close()


async def fetch_subject(
    client: Client,
    stream: str,
    subject: str,
    wait: float,
    *,
    last_per_subject: bool = False,
) -> list[Msg]:
    """Every message of ``stream`` on ``subject`` (a filter, wildcards allowed), in stream
    order, as stored when the call began (later ones are left out); with
    ``last_per_subject``, only the newest of each subject.

    One ephemeral pull consumer, read in batches with ``no_wait`` and deleted afterwards
    (the server also drops it after 30 idle seconds if that delete is lost). Each request
    may take ``wait`` seconds.

    Raises:
        nats.errors.Error, nats.js.errors.APIError: as nats-py raises them.
    """
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT if last_per_subject else DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        filter_subject=subject,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=30.0,
    )
    info = await client.jsm(timeout=wait).add_consumer(stream, config, timeout=wait)
    remaining = info.num_pending or 0
    messages: list[Msg] = []
    inbox = client.new_inbox()
    sub = await client.subscribe(inbox)
    try:
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{info.name}"
        while remaining > 0:
            batch = min(remaining, _FETCH_BATCH)
            request = b'{"batch":%d,"no_wait":true}' % batch
            await client.publish(next_subject, request, reply=inbox)
            received = 0
            while received < batch:
                msg = await sub.next_msg(wait)
                if msg.headers and msg.headers.get("Status"):
                    remaining = 0  # 404/408: nothing more (some were purged meanwhile)
                    break
                messages.append(msg)
                received += 1
            remaining -= received
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await client.publish(f"$JS.API.CONSUMER.DELETE.{stream}.{info.name}")
    return messages
