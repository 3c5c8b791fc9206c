"""History: roomcast's publish throughput with history off and on, side by side (roomcast only).

Three variants, two server processes (both ``roomcast serve``, same flags, pinned alike):

* ``off``  - channel ``plain:bench`` (a namespace without history) on server A;
* ``on``   - channel ``hist:bench`` (``history_size`` 1000, ``history_ttl`` 300 s) on server A,
  whose history is ``sqlite:////<scratch>/history.sqlite3``: the embedded default, offsets
  assigned on the event loop and rows written in batches by the store's own thread;
* ``sync`` - ``hist:bench`` on server B, identical but for
  ``sqlite:////<scratch>/h2.sqlite3?synchronous=true``: each publish waits for its commit.

Server A is the one the runner starts (through :func:`prepare`), so ``off`` and ``on`` share one
process: the ratio on/off isolates the cost of the history store. B is started by the scenario
because the history URL is process-wide. Each round measures off, on, sync in that order
(interleaved, so drift of the machine hits all three alike); publishes/s are medians over the
rounds, the on/off ratios medians of each round's own ratio, latencies are pooled.

One measurement: a publisher connection sends a 100-publication warm-up (the stream's first
write opens it), then fresh subscribers connect to the channel (100, in the load-client workers)
plus one *checker* in this process, which decodes every push and checks that the offsets it
gets are consecutive and complete; then the publisher sends the protocol's ``publish`` command
back to back keeping ``history_window`` (64) commands unanswered. ``publishes_per_s`` = replies
without error / (last reply - first send). A WebSocket with a window rather than ``POST
/api/publish``: one frame out and one short reply line in per publication cost the client a few
µs, whereas an HTTP client spends hundreds of µs per request, so the figure would be the
client's. The server runs one connection's commands one after another, so the window keeps its
input queue full rather than giving it concurrency. Latency (p50/p99 publish -> delivery, every
subscriber) includes the time a publication waits in that window: about window / throughput.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from array import array
from dataclasses import dataclass, field, replace

from bench.dialects import CentrifugeDialect
from bench.payload import make_payload
from bench.roomcast_target import HISTORY_CHANNEL, PLAIN_CHANNEL, with_history
from bench.scenarios.common import HOST, Context, Metrics, ScenarioError
from bench.servers import SCRATCH, ServerProcess
from bench.stats import percentiles_ms
from bench.targets import Target
from bench.wsclient import WsClosedError, WsConn, connect

__all__ = ["BATCHED_URL", "SYNC_URL", "Variant", "measure", "prepare", "run"]

BATCHED_URL = f"sqlite:///{SCRATCH}/history.sqlite3"
SYNC_URL = f"sqlite:///{SCRATCH}/h2.sqlite3?synchronous=true"
PAYLOAD = 100
WARMUP = 100
_DRAIN_S = 10.0
"""How long deliveries may trail the last reply before the rest count as lost."""


def prepare(target: Target) -> Target:
    """Server A: the ``hist`` and ``plain`` namespaces, batched SQLite history."""
    return with_history(target, BATCHED_URL)


class _Publisher:
    """Sends ``publish`` commands on one connection, at most ``window`` of them unanswered."""

    def __init__(self, conn: WsConn, channel: str, window: int) -> None:
        self.conn = conn
        self.channel = channel
        self.window = window
        self.dialect = CentrifugeDialect()
        self.answered = 0
        self.acked = 0
        self.errors: list[str] = []
        self.last_reply_ns = 0
        self._wake: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, port: int, channel: str, window: int) -> _Publisher:
        conn = await connect(HOST, port, CentrifugeDialect.publisher_path)
        try:
            publisher = cls(conn, channel, window)
            await publisher.dialect.open_publisher(conn)  # connect command
        except BaseException:
            conn.abort()
            raise
        conn.on_message = publisher._on_message
        return publisher

    def _on_message(self, payload: bytes, now: int) -> None:
        replies = 0
        for line in payload.split(b"\n"):
            if line.startswith(b'{"id":'):
                replies += 1
                if b'"error"' in line:
                    if len(self.errors) < 5:
                        self.errors.append(line[:200].decode(errors="replace"))
                else:
                    self.acked += 1
            elif line == b"{}":
                self.conn.send(b"{}")
        if replies:
            self.answered += replies
            self.last_reply_ns = now
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)

    async def run(self, count: int, first_seq: int, limit_s: float) -> tuple[int, float]:
        """Publish ``count`` stamped publications; returns (acknowledged, seconds from the first
        send to the last reply). Stops waiting after ``limit_s``."""
        loop = asyncio.get_running_loop()
        conn, frame = self.conn, self.dialect.publish_frame
        base_answered, base_acked = self.answered, self.acked
        goal = base_answered + count
        sent = 0
        first_ns = time.monotonic_ns()
        try:
            async with asyncio.timeout(limit_s):
                while self.answered < goal:
                    room = min(self.window - (base_answered + sent - self.answered), count - sent)
                    for _ in range(max(room, 0)):
                        conn.send(frame(self.channel, make_payload(first_seq + sent, PAYLOAD)))
                        sent += 1
                    await conn.drain()
                    if self.answered < goal and (
                        sent == count or base_answered + sent - self.answered >= self.window
                    ):
                        self._wake = loop.create_future()
                        await asyncio.wait(
                            [self._wake, conn.lost], return_when=asyncio.FIRST_COMPLETED
                        )
                        if conn.lost.done():
                            raise WsClosedError(f"publisher closed (code {conn.close_code})")
        except TimeoutError:
            pass
        acked = self.acked - base_acked
        return acked, max(self.last_reply_ns - first_ns, 1) / 1e9

    def close(self) -> None:
        self.conn.abort()


@dataclass
class _Checker:
    """One subscriber that decodes every push on a history channel and checks its offsets."""

    conn: WsConn
    expect_offsets: bool
    received: int = 0
    last_offset: int = 0
    problems: list[str] = field(default_factory=list)
    _goal: int = 0
    _reached: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, port: int, channel: str, expect_offsets: bool) -> _Checker:
        conn = await connect(HOST, port, CentrifugeDialect.subscriber_path)
        try:
            await CentrifugeDialect().subscribe(conn, channel)
        except BaseException:
            conn.abort()
            raise
        checker = cls(conn, expect_offsets)
        conn.on_message = checker._on_message
        return checker

    def _problem(self, text: str) -> None:
        if len(self.problems) < 3:
            self.problems.append(text)

    def _on_message(self, payload: bytes, _now: int) -> None:
        for line in payload.split(b"\n"):
            if line == b"{}":
                self.conn.send(b"{}")
                continue
            if not line.startswith(b'{"push"'):
                continue
            pub = json.loads(line)["push"].get("pub")
            if pub is None:
                continue
            self.received += 1
            if not self.expect_offsets:
                continue
            offset = pub.get("offset", 0)
            if not isinstance(offset, int) or offset <= 0:
                self._problem(f"publication without an offset: {line[:120]!r}")
            elif self.last_offset and offset != self.last_offset + 1:
                self._problem(f"offset {offset} after {self.last_offset}")
            self.last_offset = offset if isinstance(offset, int) else self.last_offset
        reached = self._reached
        if reached is not None and self.received >= self._goal and not reached.done():
            reached.set_result(None)

    async def wait_for(self, count: int, limit_s: float) -> None:
        """Until ``count`` publications arrived, the connection closed, or ``limit_s`` passed."""
        if self.received >= count:
            return
        self._goal = count
        self._reached = asyncio.get_running_loop().create_future()
        await asyncio.wait(
            [self._reached, self.conn.lost], timeout=limit_s, return_when=asyncio.FIRST_COMPLETED
        )

    def close(self) -> None:
        self.conn.abort()


@dataclass
class Variant:
    """One variant's figures over every round."""

    name: str
    label: str
    channel: str
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    latencies: array[int] = field(default_factory=lambda: array("q"))
    delivered: int = 0
    expected: int = 0
    acked: int = 0
    errors: list[str] = field(default_factory=list)
    offsets_checked: int = 0
    offset_problems: list[str] = field(default_factory=list)

    @property
    def keeps_history(self) -> bool:
        return self.channel == HISTORY_CHANNEL

    def metrics(self) -> Metrics:
        rate = statistics.median(self.rates) if self.rates else float("nan")
        return {
            "label": self.label,
            "channel": self.channel,
            "publishes_per_s": rate,
            "rounds_publishes_per_s": [round(r) for r in self.rates],
            "server_cpu_us_per_publish": statistics.median(self.cpu_us) if self.cpu_us else None,
            "client_cpu_pct": round(100 * max(self.client_cpu, default=0.0), 1),
            **percentiles_ms(self.latencies),
            "delivered_pct": 100.0 * self.delivered / self.expected if self.expected else None,
            "acked": self.acked,
            "publish_errors": self.errors[:5],
            "offsets_checked": self.offsets_checked,
            "offset_problems": self.offset_problems[:5],
        }


async def measure(ctx: Context, variant: Variant, seq0: int) -> None:
    """One round of one variant, added to its figures: subscribers + checker on the context's
    server, warm-up, windowed burst from a publisher on its publish server, deliveries."""
    s = ctx.sizes
    count = s.history_messages
    checker: _Checker | None = None
    publisher = await _Publisher.open(ctx.publish_to.port, variant.channel, s.history_window)
    try:
        opened = await ctx.subscribe(s.history_subscribers, channel=variant.channel)
        checker = await _Checker.open(ctx.server.port, variant.channel, variant.keeps_history)
        # Warm-up, delivered in full before the measurement: the stream's first write, the
        # subscribers' first frames and the fan-out's first allocations are not measured.
        await ctx.pool.arm(WARMUP)
        await publisher.run(WARMUP, seq0, s.history_timeout)
        await ctx.pool.collect(wait_s=_DRAIN_S)
        before = checker.received
        await ctx.pool.arm(count)
        ctx.status(f"{variant.name}: publishing {count}, {s.history_window} in flight")
        cpu_before = ctx.cpu_seconds()
        acked, seconds = await publisher.run(count, seq0 + WARMUP, s.history_timeout)
        got = await ctx.pool.collect(wait_s=_DRAIN_S)
        cpu = ctx.cpu_seconds() - cpu_before
        await checker.wait_for(before + acked, 2.0)
    finally:
        publisher.close()
        if checker is not None:
            checker.close()
        await ctx.pool.close()
    ctx.check_clients(got, f"history {variant.name}")
    if acked < count:
        ctx.warn(f"history {variant.name}: only {acked}/{count} publications acknowledged")
    variant.rates.append(acked / seconds)
    variant.cpu_us.append(1e6 * cpu / max(acked, 1))
    variant.client_cpu.append(max(got.cpu_share, default=0.0))
    variant.latencies.extend(got.latencies_ns)
    variant.delivered += got.delivered
    variant.expected += count * opened["opened"]
    variant.acked += acked
    variant.errors.extend(publisher.errors)
    assert checker is not None
    if variant.keeps_history:
        received = checker.received - before
        variant.offsets_checked += received
        if received < acked:
            variant.offset_problems.append(f"checker got {received}/{acked} publications")
        variant.offset_problems.extend(checker.problems)


async def run(ctx: Context) -> Metrics:
    if ctx.server.target.dialect != "centrifuge":
        raise ScenarioError("history needs roomcast (Centrifuge protocol)")
    s = ctx.sizes
    off = Variant("off", "off", PLAIN_CHANNEL)
    on = Variant("on", "on (sqlite)", HISTORY_CHANNEL)
    sync = Variant("sync", "on (sqlite, synchronous)", HISTORY_CHANNEL)
    ctx.status("starting the synchronous server")
    sync_target = with_history(ctx.server.target, SYNC_URL)
    async with ServerProcess(sync_target, cpus=ctx.server.cpus) as sync_server:
        on_sync = replace(ctx, server=sync_server)
        per_round = WARMUP + s.history_messages
        for r in range(s.history_rounds):
            for where, variant in ((ctx, off), (ctx, on), (on_sync, sync)):
                await measure(where, variant, r * per_round)
        if not sync_server.alive():
            raise ScenarioError(f"the synchronous server exited:\n{sync_server.log_tail(600)}")
    problems = on.offset_problems + sync.offset_problems
    if problems:
        ctx.warn("history: offsets not consecutive: " + "; ".join(problems[:3]))
    checked = on.offsets_checked + sync.offsets_checked
    metrics: Metrics = {
        "subscribers": s.history_subscribers,
        "publications_per_round": s.history_messages,
        "rounds": s.history_rounds,
        "publish_via": f"ws publish command, {s.history_window} in flight",
        "offsets": f"consecutive ({checked:,})" if not problems else "NOT consecutive",
    }
    for variant in (off, on, sync):
        figures = variant.metrics()
        metrics[variant.name] = figures
        for key in ("publishes_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_publish"):
            metrics[f"{variant.name}_{key}"] = figures[key]
    # Each round's ratio to the same round's "off", then the median: a busy spell on a shared
    # machine slows one round's three measurements alike and leaves the ratio.
    for variant in (on, sync):
        ratios = [r / base for r, base in zip(variant.rates, off.rates, strict=False) if base]
        metrics[f"{variant.name}_off_ratio"] = statistics.median(ratios) if ratios else None
    return metrics
