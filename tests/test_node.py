"""Node over the memory broker: the channel index, the publish path and encode-once fan-out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from roomcast.engines.base import HistoryOptions
from roomcast.engines.memory import MemoryBroker, MemoryHistoryStore
from roomcast.errors import ConfigurationError, StateError
from roomcast.node import Node
from roomcast.protocol import fossil
from roomcast.publication import ChannelEvent, ClientInfo, Join, Publication
from roomcast.wire import CENTRIFUGE_ENCODERS, WireFormat, encode_pub_push, text_publication
from roomcast.writer import Close, Frame, Writer, WriterState

SLOW = Close(3008, "slow")
DONE = Close(1000, "")


async def _never_sent(frame: Frame) -> None:
    raise AssertionError("this writer is never started")


class RecordingBroker(MemoryBroker):
    """The memory broker, remembering every subscribe and unsubscribe it was asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    async def subscribe(self, channel: str) -> None:
        self.calls.append(("subscribe", channel))
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))
        await super().unsubscribe(channel)


class Inbox:
    """A subscriber that keeps what it is delivered; ``on_deliver`` runs after each delivery."""

    join_leave = False

    def __init__(self, wire_format: WireFormat = WireFormat.TEXT) -> None:
        self.wire_format = wire_format
        self.messages: list[str | bytes] = []
        self.on_deliver: Callable[[], None] | None = None
        self.resyncs: list[str] = []
        self.writer = Writer(_never_sent, max_queue_bytes=1 << 20, overflow=SLOW)

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        self.messages.append(message)
        if self.on_deliver is not None:
            self.on_deliver()

    def resync(self, channel: str) -> None:
        self.resyncs.append(channel)


class CountingEncoder:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.calls = 0

    def __call__(self, channel: str, publication: Publication) -> str:
        self.calls += 1
        return f"{self.prefix}:{channel}:{publication.data.decode()}"


def run_now(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never suspends (an uncontended unsubscribe) to completion, here."""
    with pytest.raises(StopIteration):
        coro.send(None)


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


@pytest.fixture
async def node(broker: RecordingBroker) -> AsyncIterator[Node]:
    node = Node(broker)
    await node.start()
    yield node
    await node.stop()


async def test_subscribe_and_unsubscribe_keep_the_index_and_counts(node: Node) -> None:
    a, b = Inbox(), Inbox()
    await node.subscribe("room", a)
    await node.subscribe("room", b)
    await node.subscribe("other", a)
    assert sorted(node.channels) == ["other", "room"]
    assert node.subscriber_count("room") == 2
    await node.unsubscribe("room", a)
    assert node.subscriber_count("room") == 1
    await node.unsubscribe("room", b)
    await node.unsubscribe("room", b)  # unknown pairs are ignored
    assert node.channels == ["other"]
    assert node.subscriber_count("room") == 0


async def test_publication_reaches_every_subscriber_of_its_channel_only(node: Node) -> None:
    a, b, elsewhere = Inbox(), Inbox(), Inbox()
    await node.subscribe("room", a)
    await node.subscribe("room", b)
    await node.subscribe("other", elsewhere)
    await node.publish("room", text_publication("hi"))
    assert a.messages == ["hi"]
    assert b.messages == ["hi"]
    assert elsewhere.messages == []


async def test_encodes_once_per_wire_format_per_publication(broker: RecordingBroker) -> None:
    text, json = CountingEncoder("text"), CountingEncoder("json")
    node = Node(broker, {WireFormat.TEXT: text, WireFormat.CENTRIFUGE_JSON: json})
    await node.start()
    text_inboxes = [Inbox(WireFormat.TEXT) for _ in range(3)]
    json_inboxes = [Inbox(WireFormat.CENTRIFUGE_JSON) for _ in range(2)]
    for inbox in text_inboxes + json_inboxes:
        await node.subscribe("room", inbox)
    await node.publish("room", Publication(data=b"1"))
    await node.publish("room", Publication(data=b"2"))
    assert (text.calls, json.calls) == (2, 2)
    assert all(i.messages == ["text:room:1", "text:room:2"] for i in text_inboxes)
    assert all(i.messages == ["json:room:1", "json:room:2"] for i in json_inboxes)
    await node.stop()


async def test_unsubscribed_subscriber_gets_nothing(node: Node) -> None:
    gone, stays = Inbox(), Inbox()
    await node.subscribe("room", gone)
    await node.subscribe("room", stays)
    await node.unsubscribe("room", gone)
    await node.publish("room", text_publication("hi"))
    assert gone.messages == []
    assert stays.messages == ["hi"]


async def test_broker_subscribes_on_first_and_unsubscribes_on_last(
    node: Node, broker: RecordingBroker
) -> None:
    a, b = Inbox(), Inbox()
    await node.subscribe("room", a)
    await node.subscribe("room", b)
    assert broker.calls == [("subscribe", "room")]
    await node.unsubscribe("room", a)
    assert broker.calls == [("subscribe", "room")]
    await node.unsubscribe("room", b)
    assert broker.calls == [("subscribe", "room"), ("unsubscribe", "room")]


async def test_subscriber_unsubscribing_itself_mid_fan_out_does_not_break_it(node: Node) -> None:
    first, quitter, last = Inbox(), Inbox(), Inbox()
    for inbox in (first, quitter, last):
        await node.subscribe("room", inbox)
    quitter.on_deliver = lambda: run_now(node.unsubscribe("room", quitter))
    await node.publish("room", text_publication("one"))
    await node.publish("room", text_publication("two"))
    assert first.messages == last.messages == ["one", "two"]
    assert quitter.messages == ["one"]
    assert node.subscriber_count("room") == 2


async def test_publish_and_subscribe_before_start_raise_state_error(
    broker: RecordingBroker,
) -> None:
    node = Node(broker)
    with pytest.raises(StateError, match="publish"):
        await node.publish("room", text_publication("hi"))
    with pytest.raises(StateError, match="subscribe"):
        await node.subscribe("room", Inbox())
    assert broker.calls == []


async def test_publish_after_stop_raises_state_error(node: Node) -> None:
    await node.subscribe("room", Inbox())
    await node.stop()
    assert node.channels == []
    with pytest.raises(StateError):
        await node.publish("room", text_publication("hi"))


async def test_subscription_context_unsubscribes_on_exception(
    node: Node, broker: RecordingBroker
) -> None:
    inbox = Inbox()

    async def fail_inside() -> None:
        async with node.subscription("room", inbox):
            assert node.subscriber_count("room") == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_inside()
    assert node.subscriber_count("room") == 0
    assert broker.calls == [("subscribe", "room"), ("unsubscribe", "room")]
    await node.publish("room", text_publication("hi"))
    assert inbox.messages == []


class Connection:
    """A subscriber with a real, started writer whose transport takes ``pace`` s per frame;
    ``None`` stalls it like a client that stopped reading."""

    wire_format = WireFormat.TEXT
    join_leave = False

    def __init__(self, pace: float | None) -> None:
        self.pace = pace
        self.resume = asyncio.Event()
        """Set to let a stalled connection's blocked send through."""
        self.sent: list[Frame] = []
        self.writer = Writer(self._send, max_queue_bytes=10_000, overflow=SLOW)
        self.writer.start()

    async def _send(self, frame: Frame) -> None:
        if self.pace is None and not isinstance(frame, Close):
            await self.resume.wait()
        await asyncio.sleep(self.pace or 0)
        self.sent.append(frame)

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        self.writer.push(message)

    def resync(self, channel: str) -> None:
        raise AssertionError("no stream here has offsets")


async def test_a_lagging_subscriber_paces_the_publisher_and_gets_everything() -> None:
    node = Node(MemoryBroker(), lag_bytes=1_000, lag_timeout=2.0)
    await node.start()
    lagging = Connection(pace=0.01)
    await node.subscribe("room", lagging)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(10):
        for n in range(20):
            await node.publish("room", text_publication(f"{n:0400d}"))
        # 20 x 400 bytes overflow nothing, but passing lag_bytes made the publishes wait.
        assert loop.time() - started >= 0.1
        assert lagging.writer.state is WriterState.OPEN
        lagging.writer.close(DONE)
        await lagging.writer.wait_closed()
    assert len(lagging.sent) == 21
    assert lagging.sent[-1] == DONE


async def test_a_stalled_subscriber_is_cut_off_after_the_lag_timeout() -> None:
    node = Node(MemoryBroker(), lag_bytes=1_000, lag_timeout=0.2)
    await node.start()
    stalled, healthy = Connection(pace=None), Connection(pace=0)
    await node.subscribe("room", stalled)
    await node.subscribe("room", healthy)
    async with asyncio.timeout(10):
        for n in range(10):
            await node.publish("room", text_publication(f"{n:0400d}"))
        await stalled.writer.wait_closed()
        healthy.writer.close(DONE)
        await healthy.writer.wait_closed()
    assert stalled.sent == [SLOW]
    assert len(healthy.sent) == 11


async def test_a_stalled_subscriber_is_cut_off_after_the_stall_timeout_not_the_lag_timeout() -> (
    None
):
    node = Node(MemoryBroker(), lag_bytes=1_000, lag_timeout=30.0, stall_timeout=0.1)
    await node.start()
    stalled, healthy = Connection(pace=None), Connection(pace=0)
    await node.subscribe("room", stalled)
    await node.subscribe("room", healthy)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(10):
        for n in range(40):  # 40 x 400 bytes: past the stalled one's 10,000-byte queue
            await node.publish("room", text_publication(f"{n:0400d}"))
        waited = loop.time() - started
        await stalled.writer.wait_closed()
        healthy.writer.close(DONE)
        await healthy.writer.wait_closed()
    assert waited < 1.0, f"the publisher waited {waited:.2f}s for a reader that read nothing"
    assert stalled.sent == [SLOW]
    assert len(healthy.sent) == 41
    assert (node.stats.stalled_cut_offs, node.stats.lagging_cut_offs) == (1, 0)


async def test_a_stalled_subscriber_is_not_waited_for_again_and_resumes_when_it_reads() -> None:
    node = Node(MemoryBroker(), lag_bytes=1_000, lag_timeout=30.0, stall_timeout=0.1)
    await node.start()
    paused = Connection(pace=None)
    await node.subscribe("room", paused)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        for n in range(5):  # 2,000 bytes: behind, far from its 10,000-byte limit
            await node.publish("room", text_publication(f"{n:0400d}"))
        started = loop.time()
        for n in range(5, 10):
            await node.publish("room", text_publication(f"{n:0400d}"))
        assert loop.time() - started < 0.05  # let go: no publish waits for it any more
        assert paused.writer.state is WriterState.OPEN  # paused, not cut off: it has room
        paused.pace = 0.0  # it reads again
        paused.resume.set()
        await paused.writer.wait_below(0)
        paused.writer.close(DONE)
        await paused.writer.wait_closed()
    assert len(paused.sent) == 11
    assert (node.stats.stalled_cut_offs, node.stats.lagging_cut_offs) == (0, 0)


async def test_a_lagging_subscriber_that_keeps_draining_outlasts_many_stall_windows() -> None:
    node = Node(MemoryBroker(), lag_bytes=1_000, lag_timeout=5.0, stall_timeout=0.05)
    await node.start()
    lagging = Connection(pace=0.02)  # one frame per 20 ms: behind, but always moving
    await node.subscribe("room", lagging)
    async with asyncio.timeout(10):
        for n in range(20):
            await node.publish("room", text_publication(f"{n:0400d}"))
        lagging.writer.close(DONE)
        await lagging.writer.wait_closed()
    assert len(lagging.sent) == 21
    assert lagging.sent[-1] == DONE
    assert (node.stats.stalled_cut_offs, node.stats.lagging_cut_offs) == (0, 0)


async def test_a_subscriber_that_drains_too_slowly_is_cut_off_as_lagging() -> None:
    node = Node(MemoryBroker(), lag_bytes=1_000, lag_timeout=0.3, stall_timeout=0.25)
    await node.start()
    crawling = Connection(pace=0.1)  # one frame per 100 ms: moving, but 0.9 s behind
    await node.subscribe("room", crawling)
    async with asyncio.timeout(10):
        await asyncio.gather(
            *(node.publish("room", text_publication(f"{n:0900d}")) for n in range(10))
        )
        await crawling.writer.wait_closed()
    assert crawling.sent[-1] == SLOW
    assert (node.stats.stalled_cut_offs, node.stats.lagging_cut_offs) == (0, 1)


async def test_a_gap_in_a_stream_makes_its_subscribers_resync(broker: RecordingBroker) -> None:
    node = Node(broker)
    await node.start()
    inbox = Inbox()
    await node.subscribe("room", inbox)
    for offset in (1, 2, 4):
        await node.publish("room", Publication(b'"x"', offset=offset, epoch="e"))
    await node.publish("room", Publication(b'"x"', offset=1, epoch="e2"))
    assert inbox.resyncs == ["room", "room"]
    assert len(inbox.messages) == 4


async def test_join_and_leave_reach_only_subscribers_that_want_them() -> None:
    encoded: list[str] = []

    def encode(channel: str, event: object) -> str:
        encoded.append(channel)
        return "joined"

    node = Node(MemoryBroker(), event_encoders={WireFormat.TEXT: encode})
    await node.start()
    wants, ignores = Inbox(), Inbox()
    wants.join_leave = True
    await node.subscribe("room", wants)
    await node.subscribe("room", ignores)
    await node.publish_event("room", Join(ClientInfo("u", "c")))
    assert wants.messages == ["joined"]
    assert ignores.messages == []
    assert encoded == ["room"]


class RelinkingBroker(MemoryBroker):
    """The memory broker, with a way to report that its (imaginary) engine link came back."""

    def __init__(self) -> None:
        super().__init__()
        self.on_gap: Callable[[], None] | None = None

    async def start(
        self,
        handler: Callable[[str, ChannelEvent], None],
        on_gap: Callable[[], None] | None = None,
        on_control: Callable[[bytes], None] | None = None,
    ) -> None:
        await super().start(handler, on_gap, on_control)
        self.on_gap = on_gap

    def relink(self) -> None:
        assert self.on_gap is not None, "the node gave the broker no gap handler"
        self.on_gap()


async def test_a_restored_broker_link_resyncs_every_subscriber_of_every_channel() -> None:
    broker = RelinkingBroker()
    node = Node(broker)
    await node.start()
    one, two, three = Inbox(), Inbox(), Inbox()
    await node.subscribe("a", one)
    await node.subscribe("a", two)
    await node.subscribe("b", three)
    await node.publish("a", Publication(b'"x"', offset=5, epoch="e"))
    broker.relink()
    assert (one.resyncs, two.resyncs, three.resyncs) == (["a"], ["a"], ["b"])
    assert node.stats.broker_gaps == 1
    # The position was forgotten: the next offset, whatever it is, starts a fresh watch.
    await node.publish("a", Publication(b'"x"', offset=9, epoch="e"))
    assert one.resyncs == ["a"]


async def test_concurrent_publishes_into_history_are_added_and_delivered_in_order() -> None:
    store = MemoryHistoryStore()
    await store.start()
    node = Node(MemoryBroker(), history=store)
    await node.start()
    inbox = Inbox()
    await node.subscribe("room", inbox)
    options = HistoryOptions(size=10, ttl=60.0)
    added = await asyncio.gather(
        *(node.publish("room", Publication(f'"{n}"'.encode()), history=options) for n in range(5))
    )
    assert [publication.offset for publication in added] == [1, 2, 3, 4, 5]
    assert inbox.messages == [str(n) for n in range(5)]
    assert inbox.resyncs == []
    page = await store.read("room")
    assert [p.data for p in page.publications] == [f'"{n}"'.encode() for n in range(5)]
    await node.stop()
    await store.close()


async def test_publishing_inside_a_transaction_needs_a_database_broker(node: Node) -> None:
    with pytest.raises(ConfigurationError, match="PostgreSQL broker"):
        await node.publish("room", Publication(b'"x"'), connection=object())


# --- fossil deltas ------------------------------------------------------------------------------


class DeltaInbox(Inbox):
    """A delta subscriber: like a session's DeltaSubscription, its base is the last publication
    it was delivered."""

    def __init__(self, wire_format: WireFormat) -> None:
        super().__init__(wire_format)
        self.delta_base: Publication | None = None

    def deliver(self, channel: str, message: str | bytes, event: ChannelEvent) -> None:
        super().deliver(channel, message, event)
        if isinstance(event, Publication):
            self.delta_base = event


async def test_deltas_are_computed_once_per_publication_and_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Up-to-date subscribers share one delta (one fossil computation for JSON and one for
    Protobuf, here with the same payload); a subscriber without a base gets the whole one;
    plain subscribers never pay for deltas."""
    calls: list[tuple[bytes, bytes]] = []
    create = fossil.create

    def counted(source: bytes, target: bytes) -> bytes:
        calls.append((source, target))
        return create(source, target)

    monkeypatch.setattr(fossil, "create", counted)
    node = Node(MemoryBroker(), CENTRIFUGE_ENCODERS)
    await node.start()
    json_deltas = [DeltaInbox(WireFormat.CENTRIFUGE_JSON_DELTA) for _ in range(3)]
    proto_delta = DeltaInbox(WireFormat.CENTRIFUGE_PROTOBUF_DELTA)
    plain = Inbox(WireFormat.CENTRIFUGE_JSON)
    for subscriber in (*json_deltas, proto_delta, plain):
        await node.subscribe("doc", subscriber)
    first = Publication(data=b'{"text":"' + b"x" * 300 + b'","n":1}')
    second = Publication(data=b'{"text":"' + b"x" * 300 + b'","n":2}')
    await node.publish("doc", first)
    assert calls == []  # nobody had a base: everyone got it whole
    late = DeltaInbox(WireFormat.CENTRIFUGE_JSON_DELTA)
    await node.subscribe("doc", late)
    await node.publish("doc", second)
    assert len(calls) == 2  # one per payload view (JSON, Protobuf), not per subscriber
    shared = json_deltas[0].messages[1]
    assert all(inbox.messages[1] is shared for inbox in json_deltas)
    assert isinstance(shared, str)
    assert '"delta":true' in shared
    assert len(shared) < len(second.data) // 3
    assert '"delta"' not in str(late.messages[0])  # no base yet: whole
    assert isinstance(proto_delta.messages[1], bytes)
    assert plain.messages[1] == encode_pub_push("doc", second)
