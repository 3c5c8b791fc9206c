"""Formats: bytes on the wire and server CPU per delivery, by wire format (roomcast only).

Five variants, one server, measured one after another on their own channels:

* ``json`` / ``protobuf`` - the burst scenario's ~100 B publications to subscribers speaking
  the JSON protocol, or Protobuf (``?format=protobuf``);
* ``docs_json`` - 2 KB JSON documents of which each publication changes a few bytes, to JSON
  subscribers that take them whole;
* ``docs_delta_json`` / ``docs_delta_protobuf`` - the same documents in a namespace with
  ``allowed_delta_types = ["fossil"]`` and ``delta_publish``, to subscribers that asked for
  ``delta: "fossil"``: after the first, each arrives as a fossil delta against the previous.

One measurement: ``formats_subscribers`` fresh subscribers connect in this process, then one
publisher connection sends ``formats_messages`` ``publish`` commands, keeping 64 unanswered;
the figures are taken once every subscriber has counted every publication. ``bytes_per_delivery``
= WebSocket payload bytes the subscribers received / deliveries (frame headers, 2-4 bytes a
frame, left out; several pushes share a frame when they queue up). ``server_cpu_us_per_delivery``
= the server's CPU time over the measurement / deliveries (the publish commands included).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from typing import Any

from bench.dialects import DialectError
from bench.scenarios.common import HOST, Context, Metrics, ScenarioError
from bench.targets import Target
from bench.wsclient import WsConn, connect
from roomcast.protocol import protobuf
from roomcast.protocol.protobuf_schema import message_classes

__all__ = ["DOCS_NAMESPACE", "VARIANTS", "Variant", "document", "prepare", "run"]

DOCS_NAMESPACE = {"name": "docs", "allowed_delta_types": ["fossil"], "delta_publish": True}
_WINDOW = 64
_PATH = "/connection/websocket"


@dataclass(frozen=True)
class Variant:
    """One measurement: its key, how subscribers speak, where and what is published."""

    name: str
    protobuf: bool
    channel: str
    delta: bool
    documents: bool


VARIANTS = (
    Variant("json", protobuf=False, channel="formats-json", delta=False, documents=False),
    Variant("protobuf", protobuf=True, channel="formats-protobuf", delta=False, documents=False),
    Variant("docs_json", protobuf=False, channel="docs:whole", delta=False, documents=True),
    Variant("docs_delta_json", protobuf=False, channel="docs:dj", delta=True, documents=True),
    Variant("docs_delta_protobuf", protobuf=True, channel="docs:dp", delta=True, documents=True),
)


def prepare(target: Target) -> Target:
    """The server with the ``docs`` namespace, which publishes fossil deltas."""
    env = {**target.env, "ROOMCAST_CHANNEL__NAMESPACES": json.dumps([DOCS_NAMESPACE])}
    return replace(target, env=env)


def document(version: int) -> bytes:
    """A ~2 KB JSON document; each version changes its counter and one item's quantity."""
    items = [
        {"id": i, "sku": f"SKU-{i:05d}", "name": f"item {i}", "qty": (i * 7) % 13}
        for i in range(40)
    ]
    items[version % 40]["qty"] = 1000 + version
    return json.dumps({"version": version, "items": items}, separators=(",", ":")).encode()


def _small(seq: int) -> bytes:
    return json.dumps({"seq": seq, "pad": "x" * 80}, separators=(",", ":")).encode()


class _Subscriber:
    """Counts the publications (and their bytes) one connection receives."""

    def __init__(self, conn: WsConn, binary: bool) -> None:
        self.conn, self.binary = conn, binary
        self.bytes = 0
        self.publications = 0

    def on_message(self, payload: bytes, _now: int) -> None:
        self.bytes += len(payload)
        if not self.binary:
            self.publications += payload.count(b'"pub":')
            if payload == b"{}":
                self.conn.send(b"{}")
            return
        pos = 0
        while pos < len(payload):  # length-delimited replies; a push per non-empty one
            size, shift = 0, 0
            while payload[pos] & 0x80:
                size |= (payload[pos] & 0x7F) << shift
                shift, pos = shift + 7, pos + 1
            size |= payload[pos] << shift
            pos += 1 + size
            if size:
                self.publications += 1
            else:
                self.conn.send(b"\x00", binary=True)  # the ping's pong


async def _call_json(conn: WsConn, command: dict[str, Any]) -> None:
    conn.send(json.dumps(command, separators=(",", ":")).encode())
    reply = json.loads((await conn.recv()).split(b"\n")[0])
    if "error" in reply:
        raise DialectError(f"{command}: {reply['error']}")


async def _call_protobuf(conn: WsConn, fill: dict[str, Any], cid: int) -> None:
    command = message_classes()["Command"](id=cid, **fill)
    body = command.SerializeToString()
    conn.send(protobuf.varint(len(body)) + body, binary=True)
    answer = await conn.recv()
    size, pos, shift = 0, 0, 0
    while answer[pos] & 0x80:
        size |= (answer[pos] & 0x7F) << shift
        shift, pos = shift + 7, pos + 1
    size |= answer[pos] << shift
    decoded = message_classes()["Reply"].FromString(answer[pos + 1 : pos + 1 + size])
    if decoded.HasField("error"):
        raise DialectError(f"{fill}: {decoded.error.message}")


async def _subscriber(port: int, variant: Variant) -> _Subscriber:
    path = _PATH + ("?format=protobuf" if variant.protobuf else "")
    conn = await connect(HOST, port, path)
    try:
        subscribe: dict[str, Any] = {"channel": variant.channel}
        if variant.delta:
            subscribe["delta"] = "fossil"
        if variant.protobuf:
            classes = message_classes()
            await _call_protobuf(conn, {"connect": classes["ConnectRequest"]()}, 1)
            await _call_protobuf(conn, {"subscribe": classes["SubscribeRequest"](**subscribe)}, 2)
        else:
            await _call_json(conn, {"id": 1, "connect": {}})
            await _call_json(conn, {"id": 2, "subscribe": subscribe})
    except BaseException:
        conn.abort()
        raise
    subscriber = _Subscriber(conn, variant.protobuf)
    conn.on_message = subscriber.on_message
    return subscriber


async def _publish(port: int, channel: str, payloads: list[bytes], limit_s: float) -> None:
    """Send every payload as a ``publish`` command, at most ``_WINDOW`` unanswered."""
    conn = await connect(HOST, port, _PATH)
    try:
        await _call_json(conn, {"id": 1, "connect": {}})
        answered = 0
        refused: list[bytes] = []
        wake = asyncio.Event()

        def on_message(payload: bytes, _now: int) -> None:
            nonlocal answered
            answered += payload.count(b'{"id":')
            if b'"error"' in payload:
                refused.append(payload[:200])
            wake.set()

        conn.on_message = on_message
        async with asyncio.timeout(limit_s):
            for sent, payload in enumerate(payloads):
                while sent - answered >= _WINDOW:
                    wake.clear()
                    await wake.wait()
                command = b'{"id":%d,"publish":{"channel":%s,"data":%s}}' % (
                    sent + 2,
                    json.dumps(channel).encode(),
                    payload,
                )
                conn.send(command)
                await conn.drain()
            while answered < len(payloads):
                wake.clear()
                await wake.wait()
        if refused:
            raise ScenarioError(f"publish refused: {refused[0]!r}")
    finally:
        conn.abort()


async def measure(ctx: Context, variant: Variant) -> dict[str, Any]:
    """One variant's figures."""
    s = ctx.sizes
    port = ctx.server.port
    ctx.status(f"formats {variant.name}: connecting {s.formats_subscribers} clients")
    subscribers = await asyncio.gather(
        *(_subscriber(port, variant) for _ in range(s.formats_subscribers))
    )
    try:
        make = document if variant.documents else _small
        payloads = [make(n) for n in range(s.formats_messages)]
        ctx.status(f"formats {variant.name}: publishing")
        cpu_before = ctx.cpu_seconds()
        started = time.monotonic()
        await _publish(port, variant.channel, payloads, s.formats_timeout)
        goal = s.formats_messages
        deadline = started + s.formats_timeout
        while any(sub.publications < goal for sub in subscribers):
            if time.monotonic() > deadline:
                short = sum(1 for sub in subscribers if sub.publications < goal)
                raise ScenarioError(f"formats {variant.name}: {short} subscribers short")
            await asyncio.sleep(0.05)
        cpu = ctx.cpu_seconds() - cpu_before
    finally:
        for sub in subscribers:
            sub.conn.abort()
    deliveries = goal * len(subscribers)
    return {
        "bytes_per_delivery": sum(sub.bytes for sub in subscribers) / deliveries,
        "server_cpu_us_per_delivery": cpu * 1e6 / deliveries,
        "payload_bytes": sum(len(p) for p in payloads) / len(payloads),
    }


async def run(ctx: Context) -> Metrics:
    if ctx.server.target.dialect != "centrifuge":
        raise ScenarioError("formats needs roomcast (Centrifuge protocol)")
    s = ctx.sizes
    metrics: Metrics = {
        "subscribers": s.formats_subscribers,
        "publications": s.formats_messages,
        "publish_via": f"ws publish command, {_WINDOW} in flight",
    }
    for variant in VARIANTS:
        figures = await measure(ctx, variant)
        metrics[variant.name] = figures
        for key, value in figures.items():
            metrics[f"{variant.name}_{key}"] = value
    return metrics
