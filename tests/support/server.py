"""Run ``roomcast serve`` as a subprocess on an ephemeral port, for tests needing a real server."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

__all__ = ["ROOMCAST_PROTOCOL", "RunningServer", "start_app", "start_gunicorn", "start_server"]

ROOMCAST_PROTOCOL = (
    "--ws",
    "roomcast:RoomcastWebSocketProtocol",
    "--ws-per-message-deflate",
    "false",
)
"""The uvicorn flags the README documents for an app embedding roomcast."""

_LISTENING = re.compile(r"roomcast listening on http://([\d.]+):(\d+)")
_UVICORN_LISTENING = re.compile(r"Uvicorn running on http://([\d.]+):(\d+)")
_GUNICORN_LISTENING = re.compile(r"Listening at: http://([\d.]+):(\d+)")
_REPO = Path(__file__).resolve().parents[2]
_START_TIMEOUT = 30.0


class RunningServer:
    """A ``roomcast serve`` subprocess: its address, its log, and how to stop it."""

    def __init__(self, process: subprocess.Popen[str], host: str, port: int, log: list[str]):
        self.process = process
        self.host = host
        self.port = port
        self._log = log

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def log(self) -> str:
        """Everything the server printed so far."""
        return "".join(self._log)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit code; kill if it does not exit in ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_server(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> RunningServer:
    """Start ``roomcast serve --port 0 ARGS`` and wait until it answers ``/readyz``."""
    command = [sys.executable, "-m", "roomcast", "serve", "--host", "127.0.0.1", "--port", "0"]
    return _start([*command, *args], _LISTENING, env, cwd)


def start_app(target: str, *args: str, env: dict[str, str] | None = None) -> RunningServer:
    """Start ``uvicorn TARGET ARGS`` (an app embedding a Hub) on a free port, from the repo
    root, and wait until it answers ``/readyz``."""
    command = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", "0"]
    return _start([*command, *args], _UVICORN_LISTENING, env, _REPO)


def start_gunicorn(target: str, *args: str, env: dict[str, str] | None = None) -> RunningServer:
    """Start ``gunicorn TARGET ARGS`` on a free port (no control socket, so that several may
    run at once), from the repo root, and wait until it answers ``/readyz``."""
    command = [sys.executable, "-m", "gunicorn", target, "--bind", "127.0.0.1:0"]
    command += ["--no-control-socket", *args]
    return _start(command, _GUNICORN_LISTENING, env, _REPO)


def _start(
    command: list[str], listening: re.Pattern[str], env: dict[str, str] | None, cwd: Path | None
) -> RunningServer:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    environment.update(env or {})
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
        cwd=cwd,
    )
    log: list[str] = []
    found = threading.Event()
    address: list[tuple[str, int]] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            match = listening.search(line)
            if match and not found.is_set():
                address.append((match.group(1), int(match.group(2))))
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(_START_TIMEOUT) or not address:
        process.kill()
        raise RuntimeError(f"{command[2:4]} did not start:\n" + "".join(log))
    server = RunningServer(process, *address[0], log)
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server.http}/readyz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"{command[2:4]} never became ready:\n" + server.log)
