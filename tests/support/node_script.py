"""One run of a Node test script: JSON-line events from its stdout, commands to its stdin,
and a deadline bounding every wait."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

__all__ = ["NODE_DIR", "NodeScript"]

NODE_DIR = Path(__file__).resolve().parents[1] / "e2e" / "js"
"""The npm harness: package.json, the lock file and the scripts the JavaScript tests run."""


class NodeScript:
    """A running ``node SCRIPT ARGS...``; events of the kinds in ``quiet`` are left out of
    failure messages (a run may print hundreds of publications)."""

    quiet: frozenset[str] = frozenset()

    def __init__(self, process: asyncio.subprocess.Process, label: str, seconds: float) -> None:
        self.process = process
        self.label = label
        self.events: list[dict[str, Any]] = []
        self.stderr = ""
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds
        assert process.stderr is not None
        self._stderr = asyncio.create_task(process.stderr.read())

    @classmethod
    async def launch(cls, node: str, script: Path, *args: str, label: str, seconds: float) -> Any:
        """Start the script with stdin open for ``send``."""
        process = await asyncio.create_subprocess_exec(
            node,
            str(script),
            *args,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        return cls(process, label, seconds)

    def _remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    async def send(self, command: str) -> None:
        """Write one command line to the script's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        await asyncio.wait_for(self.process.stdin.drain(), self._remaining())

    async def _read_event(self) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), self._remaining())
        except TimeoutError:
            await self.kill()
            pytest.fail(f"node {self.label}: no output for {self._seconds}s; {self.describe()}")
        if not line:
            return None
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    async def wait_for(self, name: str, **fields: Any) -> dict[str, Any]:
        """Read events until one named ``name`` holding ``fields``; fail if the script ends."""
        while (event := await self._read_event()) is not None:
            if event["event"] == name and all(event.get(k) == v for k, v in fields.items()):
                return event
        await self.finish()
        pytest.fail(f"node {self.label} ended before {name!r} {fields}: {self.describe()}")

    async def finish(self) -> int:
        """Read to the end and return the script's exit code."""
        while await self._read_event() is not None:
            pass
        try:
            await asyncio.wait_for(self.process.wait(), self._remaining())
        except TimeoutError:
            await self.kill()
            pytest.fail(f"node {self.label} did not exit; {self.describe()}")
        self.stderr = (await self._stderr).decode(errors="replace")
        assert self.process.returncode is not None
        return self.process.returncode

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == name]

    def one(self, name: str) -> dict[str, Any]:
        found = self.named(name)
        assert len(found) == 1, f"expected one {name!r} event; {self.describe()}"
        return found[0]

    def names(self) -> list[str]:
        return [event["event"] for event in self.events]

    def since(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The events after ``event`` (compared by identity)."""
        index = next(i for i, e in enumerate(self.events) if e is event)
        return self.events[index + 1 :]

    def describe(self) -> str:
        shown = [e for e in self.events if e["event"] not in self.quiet]
        hidden = len(self.events) - len(shown)
        lines = "\n".join(json.dumps(e) for e in shown)
        note = f" ({hidden} not shown)" if hidden else ""
        return f"events{note}:\n{lines}\nstderr:\n{self.stderr}"
