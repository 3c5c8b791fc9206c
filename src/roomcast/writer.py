"""One writer per connection: a byte-bounded queue drained by one task.

The fan-out pushes into writers synchronously and never waits for a client. Each writer owns a
single task that takes everything queued and hands it to the transport, joining queued text
messages into one newline-separated frame when the connection's protocol allows it (the
Centrifuge JSON protocol does), so a busy connection costs one send per batch, not per message.

A writer whose unsent bytes pass ``max_queue_bytes`` drops its queue and closes the connection
with the ``overflow`` close it was given: one slow client never holds memory or time that
belongs to the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

__all__ = ["Close", "Frame", "SendFrame", "Writer", "WriterState"]

logger = logging.getLogger("roomcast.writer")


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame to send last: the WebSocket close code and a human-readable reason."""

    code: int
    reason: str


Frame = str | bytes | Close
"""What a writer hands its transport: a text frame, a binary frame, or the closing frame."""

SendFrame = Callable[[Frame], Awaitable[None]]
"""Sends one frame; raises ``OSError`` (or a transport's own error) when the peer is gone."""


class WriterState(Enum):
    """OPEN accepts messages; CLOSING sends what it must, then the close; CLOSED sends nothing."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Writer:
    """Queues messages for one connection and sends them from one task.

    Args:
        send: the only function that moves frames to this connection's transport.
        max_queue_bytes: unsent bytes allowed before the connection is closed with ``overflow``.
        overflow: the close sent when the queue overflows (the slow-consumer code).
        coalesce: join queued text messages into one frame with ``\\n`` between them.
        max_frame_bytes: when coalescing, the largest frame built by joining messages; a
            single larger message is still sent, alone.

    Sizes of text messages are counted in characters, which is their size in bytes for the
    ASCII JSON the protocol mostly carries, and at most four times less otherwise.
    """

    def __init__(
        self,
        send: SendFrame,
        *,
        max_queue_bytes: int,
        overflow: Close,
        coalesce: bool = False,
        max_frame_bytes: int = 65536,
    ) -> None:
        self._send = send
        self._max_queue_bytes = max_queue_bytes
        self._overflow = overflow
        self._coalesce = coalesce
        self._max_frame_bytes = max_frame_bytes
        self._queue: deque[str | bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._close: Close | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._progress = asyncio.Event()
        self.state = WriterState.OPEN

    @property
    def queued_bytes(self) -> int:
        """Bytes pushed and not yet handed to the transport."""
        return self._queued_bytes

    @property
    def close_frame(self) -> Close | None:
        """The close this writer sent or will send, once it is closing."""
        return self._close

    def start(self) -> None:
        """Start the draining task; call once, from the connection's event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    def push(self, message: str | bytes) -> bool:
        """Queue one message without waiting. Never raises.

        Returns ``False`` when the writer no longer accepts messages, including when this push
        overflowed the queue (the writer then closes the connection with ``overflow``).
        """
        if self.state is not WriterState.OPEN:
            return False
        self._queue.append(message)
        self._queued_bytes += len(message)
        if self._queued_bytes > self._max_queue_bytes:
            self.cut_off()
            return False
        self._wakeup.set()
        return True

    def close(self, close: Close) -> None:
        """Send everything queued so far, then ``close``. Later pushes are refused."""
        if self.state is WriterState.OPEN:
            self.state = WriterState.CLOSING
            self._close = close
            self._wakeup.set()

    def abort(self, close: Close) -> None:
        """Drop everything queued and send ``close`` as soon as the transport takes it.

        A send that is blocked on a peer that stopped reading is cancelled, so the close does
        not wait behind it.
        """
        if self.state is WriterState.CLOSED:
            return
        self.state = WriterState.CLOSING
        self._close = close
        self._queue.clear()
        self._queued_bytes = 0
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            self._task = asyncio.get_running_loop().create_task(self._send_close())
        else:
            self._wakeup.set()

    def cut_off(self) -> None:
        """Close as a slow consumer: drop the queue and send the ``overflow`` close."""
        logger.info(
            "closing a slow connection: %d bytes queued, limit %d",
            self._queued_bytes,
            self._max_queue_bytes,
        )
        self.abort(self._overflow)

    async def wait_below(self, threshold: int) -> None:
        """Return once at most ``threshold`` bytes are queued, or the writer is closed."""
        while self._queued_bytes > threshold and self.state is not WriterState.CLOSED:
            self._progress.clear()
            await self._progress.wait()

    def discard(self) -> None:
        """Stop at once without sending anything more: the peer is already gone."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        self._finish()

    async def wait_closed(self) -> None:
        """Return once the writer has sent its close or found the peer gone."""
        await self._closed.wait()

    def _next_frame(self) -> str | bytes:
        first = self._queue.popleft()
        if not self._coalesce or isinstance(first, bytes) or not self._queue:
            self._queued_bytes -= len(first)
            return first
        parts = [first]
        size = len(first)
        while self._queue:
            nxt = self._queue[0]
            if not isinstance(nxt, str) or size + 1 + len(nxt) > self._max_frame_bytes:
                break
            self._queue.popleft()
            parts.append(nxt)
            size += 1 + len(nxt)
        self._queued_bytes -= size - (len(parts) - 1)
        return "\n".join(parts)

    async def _drain(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    await self._send(self._next_frame())
                    self._progress.set()
                if self.state is WriterState.CLOSING:
                    await self._send_close()
                    return
        except asyncio.CancelledError:
            # abort() cancelled a blocked send and started _send_close() in its place; the
            # connection's own cancellation also lands here, and either way there is no more
            # to drain.
            if self._task is asyncio.current_task():
                self._finish()
            raise
        except Exception as exc:  # the transport reports a gone peer in its own way
            logger.debug("connection gone while sending: %r", exc)
            self._finish()

    async def _send_close(self) -> None:
        close = self._close
        try:
            if close is not None:
                await self._send(close)
        except Exception as exc:
            logger.debug("connection gone before its close was sent: %r", exc)
        finally:
            self._finish()

    def _finish(self) -> None:
        self.state = WriterState.CLOSED
        self._queue.clear()
        self._queued_bytes = 0
        self._closed.set()
        self._progress.set()
