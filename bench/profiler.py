"""Samples a server under test with py-spy while a scenario runs (``--profile DIR``).

py-spy attaches to the running process from outside, so the server runs unchanged; each
(server, scenario) pair leaves ``DIR/<server>-<scenario>.txt`` in py-spy's raw format, one
collapsed stack per line with its sample count, ready for a flame-graph tool or for
``python -m bench.hotspots FILE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["profiled"]

SAMPLES_PER_SECOND = 250
STOP_TIMEOUT = 20.0
"""Seconds py-spy gets to write its file after it is told to stop."""


@contextlib.asynccontextmanager
async def profiled(pid: int, out: Path | None, name: str) -> AsyncIterator[str | None]:
    """Sample ``pid`` (and its children) into ``out / f"{name}.txt"`` for the block's length.

    ``out`` must exist. Yields None, or a warning instead of sampling when py-spy is not
    installed; does nothing when ``out`` is None. Never fails the scenario it wraps.
    """
    if out is None:
        yield None
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        yield "--profile: py-spy is not installed (pip install py-spy)"
        return
    process = await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
        "--rate", str(SAMPLES_PER_SECOND), "--format", "raw", "--output", str(out / f"{name}.txt"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield None
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
