"""Writer: one bounded queue per connection, written out by one task through an async send,
or at once through the server's synchronous ``write_now`` when it offers one."""

from __future__ import annotations

import asyncio

from roomcast.protocol import DisconnectCode
from roomcast.transport.close_codes import CloseCode
from roomcast.writer import Close, Frame, Writer, WriterState

BYE = Close(CloseCode.NORMAL_CLOSURE, "bye")
SLOW = Close(DisconnectCode.SLOW, "slow")
TIMEOUT = 2.0


class Transport:
    """A send function that records frames; ``block_first`` holds the first send until released."""

    def __init__(self, *, block_first: bool = False, fail: bool = False) -> None:
        self.attempted: list[Frame] = []
        self.sent: list[Frame] = []
        self.cancelled: list[Frame] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self._block_first = block_first
        self._fail = fail

    async def send(self, frame: Frame) -> None:
        self.attempted.append(frame)
        self.entered.set()
        if self._fail:
            raise ConnectionResetError("peer gone")
        if self._block_first and len(self.attempted) == 1:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(frame)
                raise
        self.sent.append(frame)


def make_writer(
    transport: Transport,
    *,
    max_queue_bytes: int = 1000,
    coalesce: bool = False,
    max_frame_bytes: int = 65536,
) -> Writer:
    return Writer(
        transport.send,
        max_queue_bytes=max_queue_bytes,
        overflow=SLOW,
        coalesce=coalesce,
        max_frame_bytes=max_frame_bytes,
    )


async def finish(writer: Writer) -> None:
    await asyncio.wait_for(writer.wait_closed(), TIMEOUT)


async def test_push_then_close_sends_in_order_and_close_last() -> None:
    transport = Transport()
    writer = make_writer(transport)
    writer.start()
    assert writer.push("a")
    assert writer.push(b"b")
    assert writer.push("c")
    writer.close(BYE)
    await finish(writer)
    assert transport.sent == ["a", b"b", "c", BYE]
    assert writer.state is WriterState.CLOSED


async def test_coalesce_joins_queued_text_with_newlines_into_one_frame() -> None:
    transport = Transport()
    writer = make_writer(transport, coalesce=True)
    for message in ("one", "two", "three"):
        writer.push(message)
    writer.start()
    writer.close(BYE)
    await finish(writer)
    assert transport.sent == ["one\ntwo\nthree", BYE]


async def test_coalesce_never_joins_binary_messages() -> None:
    transport = Transport()
    writer = make_writer(transport, coalesce=True)
    for message in ("a", b"b", b"c", "d", "e"):
        writer.push(message)
    writer.start()
    writer.close(BYE)
    await finish(writer)
    assert transport.sent == ["a", b"b", b"c", "d\ne", BYE]


async def test_join_binary_concatenates_queued_binary_messages_into_one_frame() -> None:
    """Length-delimited Protobuf messages (the Centrifuge Protobuf protocol) may share a frame;
    text around them keeps its own frames, and no frame passes ``max_frame_bytes``."""
    transport = Transport()
    writer = Writer(
        transport.send,
        max_queue_bytes=1 << 20,
        overflow=Close(DisconnectCode.SLOW, "slow"),
        coalesce=True,
        join_binary=True,
        max_frame_bytes=6,
    )
    for message in (b"\x01a", b"\x01b", "t", b"\x02cd", b"\x01e", b"\x03fgh"):
        writer.push(message)
    writer.start()
    writer.close(BYE)
    await finish(writer)
    assert transport.sent == [b"\x01a\x01b", "t", b"\x02cd\x01e", b"\x03fgh", BYE]
    assert writer.queued_bytes == 0


async def test_coalesce_starts_new_frames_at_max_frame_bytes_keeping_order() -> None:
    transport = Transport()
    writer = make_writer(transport, coalesce=True, max_frame_bytes=10)
    messages = [f"m{i:03}" for i in range(12)]  # 4 bytes each
    for message in messages:
        writer.push(message)
    writer.start()
    writer.close(BYE)
    await finish(writer)
    frames = transport.sent[:-1]
    assert len(frames) > 1
    assert "\n".join(str(f) for f in frames) == "\n".join(messages)


async def test_coalesced_frame_never_exceeds_max_frame_bytes() -> None:
    transport = Transport()
    writer = make_writer(transport, coalesce=True, max_frame_bytes=10)
    for message in ("aaaa", "bbbb", "cccc", "dddd"):
        writer.push(message)
    writer.start()
    writer.close(BYE)
    await finish(writer)
    assert transport.sent == ["aaaa\nbbbb", "cccc\ndddd", BYE]


async def test_a_message_larger_than_max_frame_bytes_goes_alone() -> None:
    transport = Transport()
    writer = make_writer(transport, coalesce=True, max_frame_bytes=4)
    for message in ("x" * 20, "y"):
        writer.push(message)
    writer.start()
    writer.close(BYE)
    await finish(writer)
    assert transport.sent == ["x" * 20, "y", BYE]


async def test_without_coalesce_each_message_is_its_own_frame() -> None:
    transport = Transport()
    writer = make_writer(transport, coalesce=False)
    for message in ("a", "b", "c"):
        writer.push(message)
    writer.start()
    writer.close(BYE)
    await finish(writer)
    assert transport.sent == ["a", "b", "c", BYE]


async def test_queued_bytes_counts_unsent_messages_only() -> None:
    transport = Transport(block_first=True)
    writer = make_writer(transport)
    writer.push("abc")
    writer.push(b"de")
    assert writer.queued_bytes == 5
    writer.start()
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)
    assert writer.queued_bytes == 2  # "abc" is with the transport now
    writer.push("fgh")
    assert writer.queued_bytes == 5
    transport.release.set()
    writer.close(BYE)
    await finish(writer)
    assert writer.queued_bytes == 0
    assert transport.sent == ["abc", b"de", "fgh", BYE]


async def test_overflow_drops_queue_and_sends_only_the_overflow_close() -> None:
    transport = Transport()
    writer = make_writer(transport, max_queue_bytes=10)
    assert writer.push("12345")
    assert not writer.push("123456")  # 11 bytes > 10
    assert writer.queued_bytes == 0
    assert writer.close_frame == SLOW
    assert not writer.push("x")
    writer.close(BYE)  # too late: the overflow close stands
    writer.start()
    await finish(writer)
    assert transport.sent == [SLOW]
    assert not writer.push("x")


async def test_overflow_cancels_a_blocked_send_and_still_delivers_the_close() -> None:
    transport = Transport(block_first=True)
    writer = make_writer(transport, max_queue_bytes=10)
    writer.start()
    writer.push("stuck")
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)
    assert not writer.push("x" * 11)
    await finish(writer)
    assert transport.cancelled == ["stuck"]
    assert transport.sent == [SLOW]
    assert writer.state is WriterState.CLOSED


async def test_close_while_sending_flushes_the_rest_then_closes() -> None:
    transport = Transport(block_first=True)
    writer = make_writer(transport)
    writer.start()
    writer.push("a")
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)
    writer.push("b")
    writer.close(BYE)
    assert not writer.push("late")
    transport.release.set()
    await finish(writer)
    assert transport.sent == ["a", "b", BYE]


async def test_a_send_that_raises_ends_the_writer_quietly() -> None:
    transport = Transport(fail=True)
    writer = make_writer(transport)
    writer.start()
    assert writer.push("a")
    await finish(writer)
    assert writer.state is WriterState.CLOSED
    assert transport.attempted == ["a"]
    assert not writer.push("b")


async def test_discard_stops_at_once_without_sending_more() -> None:
    transport = Transport(block_first=True)
    writer = make_writer(transport)
    writer.start()
    writer.push("a")
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)
    writer.push("b")
    writer.discard()
    await finish(writer)
    for _ in range(5):
        await asyncio.sleep(0)
    assert writer.state is WriterState.CLOSED
    assert writer.queued_bytes == 0
    assert transport.attempted == ["a"]
    assert transport.cancelled == ["a"]
    assert not writer.push("c")


async def test_push_after_close_returns_false() -> None:
    transport = Transport()
    writer = make_writer(transport)
    writer.start()
    writer.close(BYE)
    assert writer.state is WriterState.CLOSING
    assert not writer.push("a")
    await finish(writer)
    assert not writer.push("b")
    assert transport.sent == [BYE]


# --- close_and_flush ------------------------------------------------------------------------


async def test_close_and_flush_sends_the_queue_then_the_close() -> None:
    transport = Transport()
    writer = make_writer(transport)
    writer.start()
    writer.push("a")
    writer.push("b")
    await asyncio.wait_for(writer.close_and_flush(BYE), TIMEOUT)
    assert writer.state is WriterState.CLOSED
    assert transport.sent == ["a", "b", BYE]


async def test_close_and_flush_keeps_a_close_already_under_way() -> None:
    transport = Transport()
    writer = make_writer(transport)
    writer.start()
    writer.push("a")
    writer.close(SLOW)
    await asyncio.wait_for(writer.close_and_flush(BYE), TIMEOUT)
    assert transport.sent == ["a", SLOW]


async def test_close_and_flush_gives_up_after_the_grace_and_stops_the_writer() -> None:
    transport = Transport(block_first=True)  # a peer that never reads: the send never returns
    writer = make_writer(transport)
    writer.start()
    writer.push("stuck")
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(writer.close_and_flush(BYE, grace=0.2), TIMEOUT)
    assert loop.time() - started >= 0.2
    assert writer.state is WriterState.CLOSED
    assert transport.cancelled == ["stuck"]
    assert transport.sent == []
    assert not writer.push("late")


async def test_close_and_flush_of_a_closed_writer_returns_at_once() -> None:
    transport = Transport(fail=True)
    writer = make_writer(transport)
    writer.start()
    writer.push("a")
    await finish(writer)
    await asyncio.wait_for(writer.close_and_flush(BYE, grace=TIMEOUT), 0.5)
    assert transport.attempted == ["a"]


# --- write_now: the synchronous write roomcast serve offers -----------------------------------


class WriteNowFake:
    """A fake ``write_now``: takes every message while ``accepting``, refuses (False) otherwise."""

    def __init__(self) -> None:
        self.accepting = True
        self.written: list[str | bytes] = []
        self.refused: list[str | bytes] = []

    def __call__(self, message: str | bytes) -> bool:
        if not self.accepting:
            self.refused.append(message)
            return False
        self.written.append(message)
        return True


def writer_with_write_now(
    transport: Transport,
    write_now: WriteNowFake,
    *,
    max_queue_bytes: int = 1000,
    coalesce: bool = True,
) -> Writer:
    writer = Writer(
        transport.send,
        max_queue_bytes=max_queue_bytes,
        overflow=SLOW,
        coalesce=coalesce,
        write_now=write_now,
    )
    writer.start()
    return writer


async def iteration_end() -> None:
    """Let the current event-loop iteration end, and with it the writers' flush."""
    await asyncio.sleep(0)


async def test_first_message_of_an_iteration_is_written_at_once() -> None:
    transport, wire = Transport(), WriteNowFake()
    writer = writer_with_write_now(transport, wire)
    assert writer.push("first")
    assert wire.written == ["first"]  # inside push, before any task could run
    assert writer.queued_bytes == 0
    assert transport.attempted == []


async def test_the_rest_of_an_iteration_is_joined_and_written_at_its_end() -> None:
    transport, wire = Transport(), WriteNowFake()
    writer = writer_with_write_now(transport, wire)
    writer.push("a")
    assert writer.push("b")
    assert writer.push("c")
    assert wire.written == ["a"]
    assert writer.queued_bytes == 2
    await iteration_end()
    assert wire.written == ["a", "b\nc"]
    assert writer.queued_bytes == 0
    # A new iteration starts over: its first message leaves at once again.
    writer.push("d")
    assert wire.written == ["a", "b\nc", "d"]
    assert transport.attempted == []


async def test_without_coalesce_the_rest_is_written_one_frame_per_message() -> None:
    transport, wire = Transport(), WriteNowFake()
    writer = writer_with_write_now(transport, wire, coalesce=False)
    for message in ("a", b"b", "c"):
        writer.push(message)
    await iteration_end()
    assert wire.written == ["a", b"b", "c"]


async def test_one_flush_per_iteration_serves_every_writer_pushed_to() -> None:
    transport, wire = Transport(), WriteNowFake()
    writers = [writer_with_write_now(transport, wire) for _ in range(3)]
    for n, writer in enumerate(writers):
        writer.push(f"{n}.1")
        writer.push(f"{n}.2")
    assert wire.written == ["0.1", "1.1", "2.1"]
    await iteration_end()
    assert wire.written == ["0.1", "1.1", "2.1", "0.2", "1.2", "2.2"]


async def test_a_refused_first_message_goes_to_the_task() -> None:
    transport, wire = Transport(), WriteNowFake()
    wire.accepting = False
    writer = writer_with_write_now(transport, wire)
    assert writer.push("a")  # refused by write_now, still accepted by the writer
    assert wire.refused == ["a"]
    assert writer.queued_bytes == 1
    await asyncio.wait_for(writer.wait_below(0), TIMEOUT)
    assert transport.sent == ["a"]
    assert wire.written == []


async def test_a_refused_flush_is_handed_to_the_task_whole_and_counted() -> None:
    transport, wire = Transport(), WriteNowFake()
    writer = writer_with_write_now(transport, wire)
    writer.push("a")
    writer.push("bb")
    writer.push("ccc")
    wire.accepting = False  # the transport's buffer filled up meanwhile
    await iteration_end()
    assert wire.refused == ["bb\nccc"]
    # The held frame counts the bytes of its messages, not the newline joining them.
    assert writer.queued_bytes == 5
    await asyncio.wait_for(writer.wait_below(0), TIMEOUT)
    assert transport.sent == ["bb\nccc"]
    assert writer.queued_bytes == 0
    assert wire.written == ["a"]


async def test_pushes_while_the_task_sends_keep_their_order_then_write_now_resumes() -> None:
    transport, wire = Transport(block_first=True), WriteNowFake()
    wire.accepting = False
    writer = writer_with_write_now(transport, wire, coalesce=False)
    writer.push("a")
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)  # the task is blocked on "a"
    wire.accepting = True
    writer.push("b")  # must not overtake "a" through write_now
    await iteration_end()
    assert wire.written == []
    transport.release.set()
    await asyncio.wait_for(writer.wait_below(0), TIMEOUT)
    assert transport.sent == ["a", "b"]
    await iteration_end()
    writer.push("c")  # the task is done: write_now serves again, at once
    assert wire.written == ["c"]


async def test_close_with_write_now_sends_the_rest_through_the_task_then_the_close() -> None:
    transport, wire = Transport(), WriteNowFake()
    writer = writer_with_write_now(transport, wire)
    writer.push("a")
    writer.push("b")
    writer.close(BYE)
    await finish(writer)
    assert wire.written == ["a"]
    assert transport.sent == ["b", BYE]


async def test_overflow_with_write_now_cuts_off_and_sends_only_the_close() -> None:
    transport, wire = Transport(), WriteNowFake()
    writer = writer_with_write_now(transport, wire, max_queue_bytes=10)
    cut_offs = Writer.slow_cut_offs
    assert writer.push("a")  # written at once: not counted against the limit
    assert writer.push("x" * 6)
    assert not writer.push("y" * 6)  # 12 bytes queued > 10
    assert Writer.slow_cut_offs == cut_offs + 1
    assert writer.queued_bytes == 0
    assert writer.close_frame == SLOW
    await finish(writer)
    await iteration_end()
    assert wire.written == ["a"]
    assert transport.sent == [SLOW]
    assert not writer.push("z")


async def test_overflow_while_write_now_refuses_cancels_the_blocked_send() -> None:
    transport, wire = Transport(block_first=True), WriteNowFake()
    wire.accepting = False  # the peer stopped reading: the transport takes nothing now
    writer = writer_with_write_now(transport, wire, max_queue_bytes=10)
    writer.push("x" * 6)
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)  # the task waits on the peer
    assert writer.push("y" * 6)
    assert not writer.push("z" * 6)
    await finish(writer)
    assert transport.cancelled == ["x" * 6]
    assert transport.sent == [SLOW]
    assert wire.written == []


async def test_drained_bytes_counts_what_the_transport_took_by_every_path() -> None:
    transport, wire = Transport(block_first=True), WriteNowFake()
    writer = writer_with_write_now(transport, wire)
    writer.push("aa")  # written at once
    writer.push("bbb")  # joined at the iteration's end
    writer.push("cccc")
    assert writer.drained_bytes == 2
    await iteration_end()
    assert writer.drained_bytes == 2 + 3 + 4  # the joined frame's newline is not counted
    wire.accepting = False
    await iteration_end()
    writer.push("ddddd")  # refused by write_now: to the task, whose first send blocks
    await iteration_end()
    await asyncio.wait_for(transport.entered.wait(), TIMEOUT)
    assert writer.drained_bytes == 9  # a send under way has not been taken yet
    transport.release.set()
    await asyncio.wait_for(writer.wait_below(0), TIMEOUT)
    await iteration_end()
    assert writer.drained_bytes == 14


async def test_progress_is_what_the_peer_took_when_the_server_counts_unsent_bytes() -> None:
    transport, wire = Transport(), WriteNowFake()
    unsent = [0]
    writer = Writer(
        transport.send,
        max_queue_bytes=1000,
        overflow=SLOW,
        coalesce=True,
        write_now=wire,
        unsent=lambda: unsent[0],
    )
    writer.push("aaaa")
    assert writer.drained_bytes == writer.progress == 4
    unsent[0] = 4  # handed over, still in the kernel's queue
    writer.push("bb")  # joined at the iteration's end
    await iteration_end()
    unsent[0] = 6
    assert (writer.drained_bytes, writer.progress) == (6, 0)  # the peer took nothing yet
    unsent[0] = 1
    assert writer.progress == 5


async def test_a_writer_cut_off_twice_is_counted_once() -> None:
    transport = Transport()
    writer = make_writer(transport)
    writer.start()
    cut_offs = Writer.slow_cut_offs
    writer.push("x")
    writer.cut_off()
    writer.cut_off()
    assert Writer.slow_cut_offs == cut_offs + 1
    await finish(writer)
    assert transport.sent == [SLOW]
