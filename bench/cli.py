"""Command line: ``python -m bench [--quick] [--servers ...] [--scenarios ...] [--out DIR]``.

Exit status: 0 when every selected server produced every selected scenario's figures, 1 when
any pair failed (the table still shows the rest), 2 on bad arguments. In ``crossnode`` an
engine that is not available is skipped, not failed; one that started and failed fails.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.console import Console

from bench.config import FULL, QUICK
from bench.report import failed, render_table, write_json, write_plot
from bench.runner import RunConfig, run
from bench.scenarios import SCENARIOS
from bench.targets import all_targets

__all__ = ["main"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _names(value: str, known: list[str], what: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


def _parser(servers: list[str], default_servers: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run roomcast and three baselines side by side and print ratios.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small counts (200 subscribers, 50 publications...): under a minute",
    )
    parser.add_argument(
        "--servers",
        default=",".join(default_servers),
        type=lambda v: _names(v, servers, "server"),
        help=f"comma-separated from {','.join(servers)}; default {','.join(default_servers)}",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        type=lambda v: _names(v, list(SCENARIOS), "scenario"),
        help=f"comma-separated, default {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="directory for latest.json and latest.png (default bench/results)",
    )
    parser.add_argument(
        "--publish",
        choices=["auto", "ws", "http"],
        default="auto",
        help="publish path: each target's default (auto), a publisher "
        "WebSocket, or HTTP POST where the server has it",
    )
    parser.add_argument(
        "--workers",
        type=int,
        choices=[1, 2],
        default=1,
        help="load-client processes (default 1: the server keeps a core)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the server and the clients to separate CPU halves",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip latest.png")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="sample each server with py-spy during each scenario into DIR/<server>-<scenario>.txt",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (see the module docstring)."""
    targets = all_targets()
    try:
        defaults = [name for name, target in targets.items() if target.in_default_run]
        args = _parser(list(targets), defaults).parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else 2
    console = Console(stderr=True)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    cfg = RunConfig(
        targets=[targets[name] for name in args.servers],
        scenarios=args.scenarios,
        sizes=QUICK if args.quick else FULL,
        quick=args.quick,
        publish=args.publish,
        workers=args.workers,
        pin=not args.no_pin,
        profile=args.profile,
    )
    doc = asyncio.run(run(cfg, console))
    table_console = Console()
    if not table_console.is_terminal:  # a file or a pipe: do not squeeze the table to 80 columns
        table_console = Console(width=180)
    render_table(doc, table_console)
    out: Path = args.out
    write_json(doc, out / "latest.json")
    written = [str(out / "latest.json")]
    if not args.no_plot:
        try:
            write_plot(doc, out / "latest.png")
            written.append(str(out / "latest.png"))
        except ImportError:
            console.print("[yellow]matplotlib is not installed: no plot[/yellow]")
    console.print("wrote " + ", ".join(written))
    return 1 if failed(doc) else 0
