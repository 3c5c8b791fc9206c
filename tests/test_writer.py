"""Writer: one bounded queue per connection, drained by one task into a send function."""

from __future__ import annotations

import asyncio

from roomcast.writer import Close, Frame, Writer, WriterState

BYE = Close(1000, "bye")
SLOW = Close(3008, "slow")
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
