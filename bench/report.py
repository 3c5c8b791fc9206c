"""Presenting a results document: a rich table, ``latest.json`` and ``latest.png``.

One table row per scenario metric, one column per server, then ``roomcast/<baseline>`` ratio
columns. Ratios are raw quotients (roomcast's value divided by the baseline's); each metric
row says which direction is better (↑ higher, ↓ lower) and the ratio is green when roomcast
is better, red when worse.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["ROWS", "Row", "render_table", "write_json", "write_plot"]


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

ROWS = [
    Row("burst", "deliveries_per_s", "burst: deliveries/s", "up", 0),
    Row("burst", "p50_ms", "burst: p50 latency ms", "down"),
    Row("burst", "p99_ms", "burst: p99 latency ms", "down"),
    Row("burst", "server_cpu_us_per_delivery", "burst: server CPU µs/delivery", "down", 2),
    Row("fixed", "p50_ms", "fixed 50/s: p50 latency ms", "down", 2),
    Row("fixed", "p99_ms", "fixed 50/s: p99 latency ms", "down", 2),
    Row("fixed", "delivered_pct", "fixed 50/s: delivered %", "up"),
    Row("slow", "healthy_delivered_pct", "slow: healthy delivered %", "up"),
    Row("slow", "healthy_closed", "slow: healthy clients disconnected", "down", 0),
    Row("slow", "stalled_outcome", "slow: stalled client", ""),
    Row("slow", "peak_rss_mb", "slow: server peak RSS MB", "down"),
    Row("idle", "kb_per_client", "idle: server KB/client", "down"),
    Row("idle", "connects_per_s", "idle: connects/s", "up", 0),
    *[Row("history", f"{v}_publishes_per_s", f"history: publishes/s {label}", "up", 0)
      for v, label in _HISTORY],
    *[Row("history", f"{v}_off_ratio", f"history: {label}/off ratio", "up", 2)
      for v, label in _HISTORY[1:]],
    *[Row("history", f"{v}_{q}_ms", f"history: {q} latency ms {label}", "down", 2)
      for q in ("p50", "p99") for v, label in _HISTORY],
    *[Row("history", f"{v}_server_cpu_us_per_publish", f"history: server CPU µs/publish {label}",
          "down", 0) for v, label in _HISTORY],
    Row("history", "offsets", "history: offsets in hist channels", ""),
]  # fmt: skip

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
    """Print the results table, then errors and warnings."""
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
        arrow = {"up": " ↑", "down": " ↓"}.get(row.better, "")
        cells: list[Text | str] = [row.label + arrow]
        cells += [_fmt(v, row.digits) for v in values]
        mine = _value(doc, PIVOT, row)
        cells += [_ratio(mine, _value(doc, b, row), row.better) for b in baselines]
        table.add_row(*cells)
    console.print(table)
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


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str, allow_nan=True) + "\n")


def _number(doc: dict[str, Any], server: str, scenario: str, key: str) -> float:
    value = doc["results"].get(server, {}).get(scenario, {}).get(key)
    return float(value) if isinstance(value, int | float) else math.nan


def _short(value: float) -> str:
    """A bar label: 457k, 1.3k, 88.2, 0.52."""
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}"


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """One panel per figure of the scenarios that ran, one bar per server (grouped bars for
    p50/p99 latencies and for the history variants)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(doc["results"])
    panels: list[tuple[str, str, list[str], bool]] = [
        ("burst", "deliveries/s ↑", ["deliveries_per_s"], False),
        ("burst", "burst latency ms ↓", ["p50_ms", "p99_ms"], True),
        ("fixed", "fixed 50/s latency ms ↓", ["p50_ms", "p99_ms"], True),
        ("slow", "slow: healthy delivered % ↑", ["healthy_delivered_pct"], False),
        ("slow", "slow: server peak RSS MB ↓", ["peak_rss_mb"], False),
        ("idle", "idle: server KB/client ↓", ["kb_per_client"], False),
        ("history", "history: publishes/s ↑",
         ["off_publishes_per_s", "on_publishes_per_s", "sync_publishes_per_s"], False),
    ]  # fmt: skip
    ran = set(doc["meta"]["scenarios"])
    panels = [panel for panel in panels if panel[0] in ran]
    if not panels:
        return
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#8c564b"]
    for ax, (scenario, title, keys, log) in zip(axes.flat, panels, strict=False):
        width = 0.8 / len(keys)
        for k, key in enumerate(keys):
            values = [_number(doc, s, scenario, key) for s in servers]
            xs = [i + (k - (len(keys) - 1) / 2) * width for i in range(len(servers))]
            bars = ax.bar(
                xs,
                [0 if math.isnan(v) else v for v in values],
                width,
                label=key.removesuffix("_ms").removesuffix("_publishes_per_s")
                if len(keys) > 1
                else None,
                color=colors[: len(servers)] if len(keys) == 1 else None,
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
        ax.set_xticks(range(len(servers)), servers)
        ax.set_title(title)
        if log:
            ax.set_yscale("log")
        if len(keys) > 1:
            ax.legend(fontsize=8)
    mode = "quick" if doc["meta"]["quick"] else "full"
    fig.suptitle(f"roomcast bench - {mode} run, {doc['meta']['started']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
