"""Where a profile's time went: ``python -m bench.hotspots FILE [--top N] [--filter TEXT]``.

Reads one py-spy raw profile (``--profile`` of the bench) and prints the functions with the
most samples, by self time (the frame on top of the stack) and by total time (anywhere on
it), each as a share of all samples. ``--filter`` keeps the stacks that pass through a frame
whose text contains TEXT (e.g. ``roomcast``), so the loop's idle wait drops out.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

__all__ = ["hotspots", "main"]


def hotspots(lines: list[str], keep: str = "") -> tuple[int, Counter[str], Counter[str]]:
    """Total samples, self samples by frame and total samples by frame of py-spy raw lines."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if keep and not any(keep in frame for frame in frames):
            continue
        count = int(count_text)
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            anywhere[frame] += count
    return total, own, anywhere


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", default="")
    args = parser.parse_args(argv)
    total, own, anywhere = hotspots(args.file.read_text().splitlines(), args.filter)
    if not total:
        print("no samples")
        return 1
    for title, counter in (("self", own), ("total", anywhere)):
        print(f"{title} ({total} samples)")
        for frame, count in counter.most_common(args.top):
            print(f"  {100 * count / total:5.1f} %  {frame}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
