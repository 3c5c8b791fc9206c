"""One writer per connection: a byte-bounded queue, written out without waiting for anyone.

The fan-out pushes into writers synchronously and never waits for a client. With the
server's synchronous ``write_now``, the first message a writer gets in an event-loop
iteration is written at once, and what follows it in the same iteration is written together
at the end of the iteration; what the transport cannot take now goes to a task that awaits
it. Queued text messages are joined into one newline-separated
frame when the connection's protocol allows it (the Centrifuge JSON protocol does), and queued
binary messages are concatenated into one binary frame when they are length-delimited (the
Centrifuge Protobuf protocol's are), so a busy connection costs one write per batch, not per
message.

An idle writer holds no task, no queue and no future: a server with many quiet connections
pays for them only while they have something to send.

A writer whose unsent bytes pass ``max_queue_bytes`` drops its queue and closes the connection
with the ``overflow`` close it was given: one slow client never holds memory or time that
belongs to the others.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Final

__all__ = [
    "CLOSE_FLUSH_TIMEOUT",
    "Close",
    "Frame",
    "SendFrame",
    "WriteNow",
    "Writer",
    "WriterState",
]

logger = logging.getLogger("roomcast.writer")

CLOSE_FLUSH_TIMEOUT = 5.0
"""Seconds :meth:`Writer.close_and_flush` gives the transport to take the last frames."""


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame to send last: the WebSocket close code and a human-readable reason."""

    code: int
    reason: str


Frame = str | bytes | Close
"""What a writer hands its transport: a text frame, a binary frame, or the closing frame."""

SendFrame = Callable[[Frame], Awaitable[None]]
"""Sends one frame; raises ``OSError`` (or a transport's own error) when the peer is gone."""

WriteNow = Callable[[str | bytes], bool]
"""Writes one whole message at once if the transport can take it now; False otherwise."""


class WriterState(Enum):
    """OPEN accepts messages; CLOSING sends what it must, then the close; CLOSED sends nothing."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_OPEN: Final = WriterState.OPEN


class _Flusher:
    """Once per event-loop iteration, flushes every writer that queued during it: one callback
    per iteration for the whole fan-out, rather than one per recipient.

    ``generation`` counts the flushes: a writer that wrote at once remembers the generation it
    wrote in, so a second message in the same iteration is queued behind it without the first
    one having to register anything but the callback.
    """

    __slots__ = ("_loop", "_pending", "armed", "generation")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Writer] = []
        self.armed = False
        self.generation = 0

    def arm(self) -> None:
        """Make sure the flush runs at the end of this iteration."""
        if not self.armed:
            self.armed = True
            self._loop.call_soon(self._run)

    def add(self, writer: Writer) -> None:
        self.arm()
        self._pending.append(writer)

    def _run(self) -> None:
        self.armed = False
        self.generation += 1
        pending, self._pending = self._pending, []
        for writer in pending:
            writer._flush()


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary()
)


def _flusher_of(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher(loop)
    return flusher


class Writer:
    """Queues messages for one connection and writes them out.

    ``Writer.slow_cut_offs`` counts, for the whole process, the connections closed as slow.

    Args:
        send: the asynchronous way to the transport, for whatever ``write_now`` cannot take.
        max_queue_bytes: unsent bytes allowed before the connection is closed with ``overflow``.
        overflow: the close sent when the queue overflows (the slow-consumer code).
        coalesce: join queued text messages into one frame with ``\\n`` between them.
        join_binary: concatenate queued binary messages into one frame (each must carry its
            own length, as length-delimited Protobuf messages do).
        max_frame_bytes: when coalescing, the largest frame built by joining messages; a
            single larger message is still sent, alone.
        write_now: a synchronous write offered by the server (see ``WriteNow``).
        unsent: the bytes the server's transport and the kernel hold unsent, if it says.

    Sizes of text messages are counted in characters, which is their size in bytes for the
    ASCII JSON the protocol mostly carries, and at most four times less otherwise.
    """

    slow_cut_offs: ClassVar[int] = 0

    def __init__(
        self,
        send: SendFrame,
        *,
        max_queue_bytes: int,
        overflow: Close,
        coalesce: bool = False,
        join_binary: bool = False,
        max_frame_bytes: int = 65536,
        write_now: WriteNow | None = None,
        unsent: Callable[[], int] | None = None,
    ) -> None:
        self._send = send
        self._write_now = write_now
        self._unsent = unsent
        self._max_queue_bytes = max_queue_bytes
        self.overflow = overflow
        """The close sent when the queue overflows."""
        self._coalesce = coalesce
        self._join_binary = join_binary
        self._max_frame_bytes = max_frame_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[str | bytes] | None = None
        # A frame write_now refused, sent before anything else: (frame, bytes it accounts for).
        self._held: tuple[str | bytes, int] | None = None
        self.queued_bytes = 0
        """Bytes pushed and not yet handed to the transport (read-only outside the writer; a
        plain attribute because the fan-out reads it for every delivery)."""
        self._drained_bytes = 0
        self._close: Close | None = None
        self._task: asyncio.Task[None] | None = None
        self._flusher: _Flusher | None = None
        self._flush_scheduled = False
        self._wrote_in = -1  # the flusher generation of the last message written at once
        self._waiters: list[asyncio.Future[None]] = []
        self.state = WriterState.OPEN

    @property
    def drained_bytes(self) -> int:
        """Bytes handed to the transport since the writer was made."""
        return self._drained_bytes

    @property
    def progress(self) -> int:
        """How far the peer has got: the bytes handed to the transport less what the transport
        and the kernel still hold unsent, when the server says (``unsent``), else the bytes
        handed over. A stalled peer's stands still; a lagging one's moves, even while the
        kernel's socket buffer between them is full."""
        unsent = self._unsent
        return self._drained_bytes if unsent is None else self._drained_bytes - unsent()

    @property
    def close_frame(self) -> Close | None:
        """The close this writer sent or will send, once it is closing."""
        return self._close

    def start(self) -> None:
        """Bind the writer to the running event loop; call once, before the first push."""
        self._loop = asyncio.get_running_loop()
        self._flusher = _flusher_of(self._loop)

    def push(self, message: str | bytes) -> bool:
        """Queue one message without waiting. Never raises.

        Returns ``False`` when the writer no longer accepts messages, including when this push
        overflowed the queue (the writer then closes the connection with ``overflow``).
        """
        if self.state is not _OPEN:
            return False
        write_now = self._write_now
        if (
            write_now is not None
            and not self._flush_scheduled
            and self._queue is None
            and self._held is None
            and self._task is None
        ):
            # The first message of this event-loop iteration leaves at once; any that follow
            # it in the same iteration are joined and written when the iteration ends.
            flusher = self._flusher
            if flusher is None:
                flusher = self._flusher = _flusher_of(self._running_loop())
            generation = flusher.generation
            if self._wrote_in != generation and write_now(message):
                self._wrote_in = generation
                flusher.arm()
                self._drained_bytes += len(message)
                return True
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(message)
        self.queued_bytes += len(message)
        if self.queued_bytes > self._max_queue_bytes:
            self.cut_off()
            return False
        if self._task is None:
            if self._write_now is None:
                self._spawn(self._drain())
            elif not self._flush_scheduled:
                self._schedule_flush()
        return True

    def _schedule_flush(self) -> None:
        self._flush_scheduled = True
        flusher = self._flusher
        if flusher is None:
            flusher = self._flusher = _flusher_of(self._running_loop())
        flusher.add(self)

    def close(self, close: Close) -> None:
        """Send everything queued so far, then ``close``. Later pushes are refused."""
        if self.state is WriterState.OPEN:
            self.state = WriterState.CLOSING
            self._close = close
            if self._task is None:
                self._spawn(self._drain())

    def abort(self, close: Close) -> None:
        """Drop everything queued and send ``close`` as soon as the transport takes it.

        A send that is blocked on a peer that stopped reading is cancelled, so the close does
        not wait behind it.
        """
        if self.state is WriterState.CLOSED:
            return
        self.state = WriterState.CLOSING
        self._close = close
        self._drop_queue()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        self._spawn(self._send_close())

    def cut_off(self) -> None:
        """Close as a slow consumer: drop the queue and send the ``overflow`` close.

        Counted in ``slow_cut_offs`` once per writer; a writer already closing is left alone.
        """
        if self.state is not WriterState.OPEN:
            return
        Writer.slow_cut_offs += 1
        logger.info(
            "closing a slow connection: %d bytes queued, limit %d",
            self.queued_bytes,
            self._max_queue_bytes,
        )
        self.abort(self.overflow)

    def discard(self) -> None:
        """Stop at once without sending anything more: the peer is already gone."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
        self._finish()

    async def close_and_flush(self, close: Close, *, grace: float = CLOSE_FLUSH_TIMEOUT) -> None:
        """End the connection: send everything queued, then a close, in ``grace`` seconds at most.

        The close sent is ``close``, unless the writer was already closing, in which case the
        close it was given first stands. If the transport has not taken everything within
        ``grace`` seconds, the writer stops without sending more, as :meth:`discard` does.
        When this returns the writer is ``CLOSED``. Never raises, except when cancelled.
        """
        self.close(close)
        try:
            await asyncio.wait_for(self.wait_closed(), grace)
        except TimeoutError:
            logger.debug("the connection took no close in %.1f s; stopped without it", grace)
            self.discard()

    async def wait_below(self, threshold: int) -> None:
        """Return once at most ``threshold`` bytes are queued, or the writer is closed."""
        while self.queued_bytes > threshold and self.state is not WriterState.CLOSED:
            await self._wait()

    async def wait_closed(self) -> None:
        """Return once the writer has sent its close or found the peer gone."""
        while self.state is not WriterState.CLOSED:
            await self._wait()

    # --- internals ---------------------------------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self._task = self._running_loop().create_task(work)

    async def _wait(self) -> None:
        waiter = self._running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _notify(self) -> None:
        """Wake everyone waiting for progress or for the close."""
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _flush(self) -> None:
        """Write what is queued through ``write_now``; hand what it refuses to a task."""
        self._flush_scheduled = False
        write_now = self._write_now
        if write_now is None or self._task is not None or self.state is WriterState.CLOSED:
            return
        wrote = False
        while self._has_frames():
            frame, size = self._next_frame()
            if not write_now(frame):
                self._held = (frame, size)
                self.queued_bytes += size
                self._spawn(self._drain())
                break
            self._drained_bytes += size
            wrote = True
        if wrote:
            self._notify()

    def _has_frames(self) -> bool:
        return bool(self._queue) or self._held is not None

    def _next_frame(self) -> tuple[str | bytes, int]:
        """The next frame to send and the queued bytes it accounts for, taken off the queue."""
        held = self._held
        if held is not None:
            self._held = None
            self.queued_bytes -= held[1]
            return held
        queue = self._queue
        assert queue is not None
        first = queue.popleft()
        if isinstance(first, bytes):
            if self._join_binary and queue:
                return self._joined_binary(first, queue)
            self._release_if_empty()
            self.queued_bytes -= len(first)
            return first, len(first)
        if not self._coalesce or not queue:
            self._release_if_empty()
            self.queued_bytes -= len(first)
            return first, len(first)
        parts = [first]
        size = len(first)
        while queue:
            nxt = queue[0]
            if not isinstance(nxt, str) or size + 1 + len(nxt) > self._max_frame_bytes:
                break
            queue.popleft()
            parts.append(nxt)
            size += 1 + len(nxt)
        self._release_if_empty()
        accounted = size - (len(parts) - 1)
        self.queued_bytes -= accounted
        return "\n".join(parts), accounted

    def _joined_binary(self, first: bytes, queue: deque[str | bytes]) -> tuple[bytes, int]:
        """``first`` and the binary messages queued after it, up to ``max_frame_bytes``, as
        one frame."""
        parts = [first]
        size = len(first)
        while queue:
            nxt = queue[0]
            if not isinstance(nxt, bytes) or size + len(nxt) > self._max_frame_bytes:
                break
            queue.popleft()
            parts.append(nxt)
            size += len(nxt)
        self._release_if_empty()
        self.queued_bytes -= size
        return b"".join(parts), size

    def _release_if_empty(self) -> None:
        if not self._queue:
            self._queue = None

    def _drop_queue(self) -> None:
        self._queue = None
        self._held = None
        self.queued_bytes = 0

    async def _drain(self) -> None:
        """Send what is queued by awaiting the transport; exit once there is nothing left."""
        try:
            while self._has_frames():
                frame, size = self._next_frame()
                await self._send(frame)
                self._drained_bytes += size
                self._notify()
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
            return
        if self._task is asyncio.current_task():
            self._task = None

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
        self._drop_queue()
        self._notify()
