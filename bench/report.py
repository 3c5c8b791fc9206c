"""Presenting a results document: a rich table, ``latest.json`` and ``latest.png``.

One table row per scenario metric, one column per server, then ``roomcast/<baseline>`` ratio
columns. Ratios are raw quotients (roomcast's value divided by the baseline's); each metric
row says which direction is better (↑ higher, ↓ lower) and the ratio is green when roomcast
is better, red when worse. The ``crossnode`` scenario has a table of its own: one row per
engine configuration, each figure followed by its ratio to the single-process memory one.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["CROSSNODE_COLUMNS", "ROWS", "Row", "failed", "render_table", "write_json", "write_plot"]


@dataclass(frozen=True)
class Row:
    """One metric of one scenario, as shown in the table."""

    scenario: str
    key: str
    label: str
    better: str  # "up", "down" or "" (text, no ratio)
    digits: int = 1


_HISTORY = [("off", "off"), ("on", "on (sqlite)"), ("sync", "on (sqlite, synchronous)")]
"""The history scenario's variants: metric key prefix, label."""

_FORMATS = [
    ("json", "JSON 100 B"),
    ("protobuf", "Protobuf 100 B"),
    ("docs_json", "2 KB docs JSON whole"),
    ("docs_delta_json", "2 KB docs JSON fossil"),
    ("docs_delta_protobuf", "2 KB docs Protobuf fossil"),
]
"""The formats scenario's variants: metric key prefix, label."""

_FIXED = [("fixed", "fixed 50/s"), ("fixed100", "fixed 100/s"), ("fixed200", "fixed 200/s")]
"""The fixed-load scenarios: name, label."""

ROWS = [
    Row("burst", "deliveries_per_s", "burst: deliveries/s", "up", 0),
    Row("burst", "p50_ms", "burst: p50 latency ms", "down"),
    Row("burst", "p99_ms", "burst: p99 latency ms", "down"),
    Row("burst", "server_cpu_us_per_delivery", "burst: server CPU µs/delivery", "down", 2),
    *[Row(scenario, key, f"{label}: {what}", better, digits)
      for scenario, label in _FIXED
      for key, what, better, digits in (
          ("p50_ms", "p50 latency ms", "down", 2),
          ("p99_ms", "p99 latency ms", "down", 2),
          ("delivered_pct", "delivered %", "up", 1),
      )],
    Row("slow", "healthy_delivered_pct", "slow: healthy delivered %", "up"),
    Row("slow", "healthy_closed", "slow: healthy clients disconnected", "down", 0),
    Row("slow", "p50_ms", "slow: healthy p50 latency ms", "down", 1),
    Row("slow", "p99_ms", "slow: healthy p99 latency ms", "down", 1),
    Row("slow", "stalled_outcome", "slow: stalled client", ""),
    Row("slow", "peak_rss_mb", "slow: server peak RSS MB", "down"),
    Row("idle", "kb_per_client", "idle: server KB/client", "down"),
    Row("idle", "connects_per_s", "idle: connects/s", "up", 0),
    Row("connections", "clients", "connections: subscribed", "up", 0),
    Row("connections", "connects_per_s", "connections: connects/s", "up", 0),
    Row("connections", "kib_per_connection", "connections: server KiB/connection", "down"),
    Row("connections", "reach_all_ms", "connections: one publication to all, ms", "down"),
    Row("connections", "shutdown_s", "connections: shutdown s", "down", 2),
    Row("connections2", "clients", "connections, two nodes: subscribed", "up", 0),
    Row("connections2", "connects_per_s", "connections, two nodes: connects/s", "up", 0),
    Row("connections2", "kib_per_connection", "connections, two nodes: KiB/connection", "down"),
    Row("connections2", "reach_all_ms", "connections, two nodes: publication to all, ms", "down"),
    Row("connections2", "shutdown_s", "connections, two nodes: shutdown s", "down", 2),
    *[Row("history", f"{v}_publishes_per_s", f"history: publishes/s {label}", "up", 0)
      for v, label in _HISTORY],
    *[Row("history", f"{v}_off_ratio", f"history: {label}/off ratio", "up", 2)
      for v, label in _HISTORY[1:]],
    *[Row("history", f"{v}_{q}_ms", f"history: {q} latency ms {label}", "down", 2)
      for q in ("p50", "p99") for v, label in _HISTORY],
    *[Row("history", f"{v}_server_cpu_us_per_publish", f"history: server CPU µs/publish {label}",
          "down", 0) for v, label in _HISTORY],
    Row("history", "offsets", "history: offsets in hist channels", ""),
    *[Row("formats", f"{v}_bytes_per_delivery", f"formats: bytes/delivery {label}", "down", 0)
      for v, label in _FORMATS],
    *[Row("formats", f"{v}_server_cpu_us_per_delivery",
          f"formats: server CPU µs/delivery {label}", "down", 2) for v, label in _FORMATS],
]  # fmt: skip

CROSSNODE_COLUMNS = [
    Row("burst", "deliveries_per_s", "burst:\ndeliveries/s", "up", 0),
    Row("burst", "server_cpu_us_per_delivery", "burst: CPU\nµs/delivery", "down", 2),
    Row("fixed", "p50_ms", "fixed 50/s:\np50 ms", "down", 2),
    Row("fixed", "p99_ms", "fixed 50/s:\np99 ms", "down", 2),
    Row("history", "publishes_per_s", "history on:\npublishes/s", "up", 0),
    Row("history", "server_cpu_us_per_publish", "history on: CPU\nµs/publish", "down", 0),
]
"""The crossnode table's figures: ``scenario`` names the measurement within a configuration."""
CROSSNODE_BASE = "memory"
_CROSSNODE_STEPS = ("burst", "fixed", "history")
"""The measurements of one crossnode configuration, each a dict of figures in its results."""

PIVOT = "roomcast"


def _value(doc: dict[str, Any], server: str, row: Row) -> Any:
    metrics = doc["results"].get(server, {}).get(row.scenario)
    if metrics is None:
        return None
    if "error" in metrics:
        return Text("error", style="red")
    if "skipped" in metrics:
        return Text(metrics["skipped"], style="dim")
    value = metrics.get(row.key)
    if row.key == "offsets" and value is not None and not value.startswith("consecutive"):
        return Text(f"WARNING: {value}", style="bold red")
    return value


def _fmt(value: Any, digits: int) -> Text | str:
    if isinstance(value, Text):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ratio(mine: Any, theirs: Any, better: str) -> Text | str:
    if not better or not isinstance(mine, int | float) or not isinstance(theirs, int | float):
        return "—"
    if not theirs or math.isnan(mine) or math.isnan(theirs):
        return "—"
    ratio = mine / theirs
    good = ratio > 1 if better == "up" else ratio < 1
    style = "green" if good else ("red" if ratio != 1 else "")
    return Text(f"{ratio:.2f}x", style=style)


def render_table(doc: dict[str, Any], console: Console) -> None:
    """Print the results table (if a scenario besides crossnode ran), the crossnode table (if
    it ran), then notes, errors and warnings."""
    servers = list(doc["results"])
    baselines = [s for s in servers if s != PIVOT] if PIVOT in servers else []
    mode = "quick" if doc["meta"]["quick"] else "full"
    caption = "↑ higher is better, ↓ lower is better"
    if baselines:
        caption += f"; ratio = {PIVOT} / baseline"
    table = Table(
        title=f"roomcast bench ({mode} run, {doc['meta']['duration_s']:.0f} s)", caption=caption
    )
    table.add_column("metric", no_wrap=True)
    for server in servers:
        via = doc["meta"]["servers"][server]["publish_via"]
        table.add_column(f"{server}\n(pub: {via})", justify="right")
    for baseline in baselines:
        table.add_column(f"{PIVOT}/\n{baseline}", justify="right")
    for row in ROWS:
        values = [_value(doc, s, row) for s in servers]
        if all(v is None for v in values):
            continue
        cells: list[Text | str] = [row.label + _arrow(row)]
        cells += [_fmt(v, row.digits) for v in values]
        mine = _value(doc, PIVOT, row)
        cells += [_ratio(mine, _value(doc, b, row), row.better) for b in baselines]
        table.add_row(*cells)
    if table.row_count:
        console.print(table)
    crossnode = doc["results"].get(PIVOT, {}).get("crossnode", {})
    if "configurations" in crossnode:
        _render_crossnode(crossnode, doc["meta"], console)
    skipped: dict[str, list[str]] = {}
    for server, scenarios in doc["results"].items():
        for scenario, metrics in scenarios.items():
            if "skipped" in metrics:
                skipped.setdefault(scenario, []).append(server)
    for scenario, names in skipped.items():
        console.print(f"[dim]note[/dim] {scenario}: not run on {', '.join(names)} "
                      f"({doc['results'][names[0]][scenario]['skipped']})")  # fmt: skip
    for server, scenarios in doc["results"].items():
        for scenario, metrics in scenarios.items():
            if "error" in metrics:
                console.print(f"[red]error[/red] {server}/{scenario}: {metrics['error']}")
    for warning in doc["warnings"]:
        console.print(f"[yellow]warning[/yellow] {warning}")


def _arrow(row: Row) -> str:
    return {"up": " ↑", "down": " ↓"}.get(row.better, "")


def _crossnode_cell(config: dict[str, Any], base: dict[str, Any], col: Row) -> Text | str:
    """A figure of one configuration, then its ratio to the memory configuration's."""
    if "skipped" in config:
        return Text("skipped", style="dim")
    figures = config.get(col.scenario)
    if figures is None:  # the configuration failed before this measurement
        return Text("error", style="red")
    if "skipped" in figures:
        return Text("skipped", style="dim")
    if "error" in figures:
        return Text("error", style="red")
    value = figures.get(col.key)
    cell = Text(str(_fmt(value, col.digits)))
    if config is not base:
        cell.append(" ")
        cell.append(_ratio(value, base.get(col.scenario, {}).get(col.key), col.better))
    return cell


_EXCEPTION_LINE = re.compile(r"^[\w.]*(Error|Exception|Unavailable)\b")


def _gist(text: str) -> str:
    """An error in one line: a server's log tail becomes its first line and the exception."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 2:
        return " ".join(lines)
    cause = next((line for line in reversed(lines) if _EXCEPTION_LINE.match(line)), lines[-1])
    return f"{lines[0]} … {cause}"


def _crossnode_note(config: dict[str, Any]) -> Text:
    if "skipped" in config:
        return Text(f"skipped: {config['skipped']}", style="yellow")
    notes = [f"error: {_gist(config['error'])}"] if "error" in config else []
    for name in _CROSSNODE_STEPS:
        figures = config.get(name, {})
        if "error" in figures or "skipped" in figures:
            kind = "error" if "error" in figures else "skipped"
            notes.append(f"{name} {kind}: {_gist(figures[kind])}")
        elif figures.get("delivered_pct", 100.0) < 100.0:
            notes.append(f"{name}: {figures['delivered_pct']:.1f} % delivered")
        if figures.get("offset_problems"):
            notes.append(f"history offsets: {'; '.join(figures['offset_problems'][:2])}")
    failure = "error" in config or any("error" in config.get(n, {}) for n in _CROSSNODE_STEPS)
    return Text("; ".join(notes), style="red" if failure else "yellow")


def _render_crossnode(metrics: dict[str, Any], meta: dict[str, Any], console: Console) -> None:
    configs: dict[str, dict[str, Any]] = metrics["configurations"]
    base = configs.get(CROSSNODE_BASE, {})
    via = meta["servers"][PIVOT]["publish_via"]
    table = Table(
        title=f"roomcast cross-node ({'quick' if meta['quick'] else 'full'} run): "
        f"{metrics['subscribers']} subscribers on node B, publisher on node A (pub: {via})",
        caption="↑ higher is better, ↓ lower is better; after each figure its ratio to memory "
        "(one process); both nodes share the server's CPUs, CPU counts both",
    )
    table.add_column("engine", no_wrap=True)
    for col in CROSSNODE_COLUMNS:
        table.add_column(col.label + _arrow(col), justify="right")
    table.add_column("note", overflow="fold")
    for name, config in configs.items():
        label = f"{name} (1 process)" if config.get("nodes") == 1 else f"{name} (2 nodes)"
        cells = [_crossnode_cell(config, base, col) for col in CROSSNODE_COLUMNS]
        table.add_row(label, *cells, _crossnode_note(config))
    console.print(table)


def failed(doc: dict[str, Any]) -> bool:
    """Whether a pair, or a crossnode configuration that could run, produced no figures."""
    for scenarios in doc["results"].values():
        for metrics in scenarios.values():
            if "error" in metrics:
                return True
            for config in metrics.get("configurations", {}).values():
                if "error" in config or any(
                    isinstance(v, dict) and "error" in v for v in config.values()
                ):
                    return True
    return False


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str, allow_nan=True) + "\n")


def _as_float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def _number(doc: dict[str, Any], server: str, scenario: str, key: str) -> float:
    return _as_float(doc["results"].get(server, {}).get(scenario, {}).get(key))


def _short(value: float) -> str:
    """A bar label: 457k, 1.3k, 88.2, 0.52."""
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}"


@dataclass(frozen=True)
class _Panel:
    """One plot panel: a group of bars per x label, one bar per series in each group."""

    title: str
    xlabels: list[str]
    series: dict[str, list[float]]  # series label -> one value per x label
    log: bool = False


_SERVER_PANELS = [
    ("burst", "deliveries/s ↑", ["deliveries_per_s"], False),
    ("burst", "burst latency ms ↓", ["p50_ms", "p99_ms"], True),
    *[(scenario, f"{label} latency ms ↓", ["p50_ms", "p99_ms"], True)
      for scenario, label in _FIXED],
    ("slow", "slow: healthy delivered % ↑", ["healthy_delivered_pct"], False),
    ("slow", "slow: server peak RSS MB ↓", ["peak_rss_mb"], False),
    ("idle", "idle: server KB/client ↓", ["kb_per_client"], False),
    ("history", "history: publishes/s ↑",
     ["off_publishes_per_s", "on_publishes_per_s", "sync_publishes_per_s"], False),
]  # fmt: skip
"""(scenario, title, metric keys, log scale): bars per server."""
_CROSSNODE_PANELS = [
    ("cross-node: burst deliveries/s ↑", [("burst", "deliveries_per_s")], False),
    ("cross-node: fixed 50/s latency ms ↓", [("fixed", "p50_ms"), ("fixed", "p99_ms")], True),
    ("cross-node: history on, publishes/s ↑", [("history", "publishes_per_s")], False),
]
"""(title, (measurement, metric key) per series, log scale): bars per engine configuration."""


def _series_label(key: str) -> str:
    return key.removesuffix("_ms").removesuffix("_publishes_per_s")


def _panels(doc: dict[str, Any]) -> list[_Panel]:
    ran = set(doc["meta"]["scenarios"])
    servers = list(doc["results"])
    panels = [
        _Panel(title, servers,
               {_series_label(k): [_number(doc, s, scenario, k) for s in servers] for k in keys},
               log)
        for scenario, title, keys, log in _SERVER_PANELS if scenario in ran
    ]  # fmt: skip
    configs = doc["results"].get(PIVOT, {}).get("crossnode", {}).get("configurations", {})
    measured = {name: c for name, c in configs.items() if "skipped" not in c}
    if measured:
        for title, keys, log in _CROSSNODE_PANELS:
            series = {
                _series_label(key): [_as_float(c.get(m, {}).get(key)) for c in measured.values()]
                for m, key in keys
            }
            panels.append(_Panel(title, list(measured), series, log))
    return panels


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """One panel per figure of the scenarios that ran, one bar per server (grouped bars for
    p50/p99 latencies and for the history variants); crossnode's panels have one bar per
    engine configuration. Writes nothing if no scenario has a panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(doc)
    if not panels:
        return
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b"]
    for ax, panel in zip(axes.flat, panels, strict=False):
        groups, several = len(panel.xlabels), len(panel.series) > 1
        width = 0.8 / len(panel.series)
        for k, (label, values) in enumerate(panel.series.items()):
            xs = [i + (k - (len(panel.series) - 1) / 2) * width for i in range(groups)]
            bars = ax.bar(
                xs,
                [0 if math.isnan(v) else v for v in values],
                width,
                label=label if several else None,
                color=None if several else colors[:groups],
            )
            for bar, value in zip(bars, values, strict=True):
                text = _short(value)
                ax.annotate(
                    text,
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        ax.set_xticks(range(groups), panel.xlabels)
        ax.set_title(panel.title)
        if panel.log:
            ax.set_yscale("log")
        if several:
            ax.legend(fontsize=8)
    mode = "quick" if doc["meta"]["quick"] else "full"
    fig.suptitle(f"roomcast bench - {mode} run, {doc['meta']['started']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
