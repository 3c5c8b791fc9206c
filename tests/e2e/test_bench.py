"""``python -m bench --quick`` (``bench/README.md``) produces figures: run with the fewest
servers and scenarios that still show a comparison (roomcast, roomcast embedded in an app
through both of its endpoints, and one baseline; the burst scenario), into a scratch
directory, bounded in time. The run must exit 0 (every pair
produced figures), print the ratio table, and write ``latest.json`` and ``latest.png``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.ci import require_module

REPO = Path(__file__).resolve().parents[2]
RUN_WITHIN = 120.0
SERVERS = ["embedded", "roomcast", "rooms", "websockets"]
FIGURES = ["deliveries_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_delivery"]


@pytest.mark.timeout(RUN_WITHIN + 30)
def test_the_quick_bench_produces_figures(tmp_path: Path) -> None:
    require_module("matplotlib", hint="`pip install -e '.[bench]'` installs it")
    command = [sys.executable, "-m", "bench", "--quick", "--servers", ",".join(SERVERS)]
    command += ["--scenarios", "burst", "--out", str(tmp_path)]
    run = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=RUN_WITHIN, check=False
    )
    output = f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == 0, output
    assert "roomcast/" in run.stdout, output  # the ratio column's header
    assert re.search(r"\d\.\d\dx", run.stdout), output  # and its cells: "2.40x"

    doc: dict[str, Any] = json.loads((tmp_path / "latest.json").read_text())
    assert set(doc) == {"meta", "results", "warnings"}
    assert doc["meta"]["quick"] is True
    assert doc["meta"]["scenarios"] == ["burst"]
    assert sorted(doc["meta"]["servers"]) == SERVERS
    for server in SERVERS:
        burst = doc["results"][server]["burst"]
        assert "error" not in burst, burst
        assert all(burst[figure] > 0 for figure in FIGURES), burst
        assert burst["delivered_pct"] == 100.0, burst
        assert burst["deliveries"] == burst["subscribers"] * burst["publications"], burst
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.timeout(RUN_WITHIN + 30)
def test_profile_samples_the_server_under_test_with_py_spy(tmp_path: Path) -> None:
    require_module("matplotlib", hint="`pip install -e '.[bench]'` installs it")
    profiles = tmp_path / "profiles"
    command = [sys.executable, "-m", "bench", "--quick", "--servers", "roomcast"]
    command += ["--scenarios", "burst", "--out", str(tmp_path), "--no-plot"]
    command += ["--profile", str(profiles)]
    run = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=RUN_WITHIN, check=False
    )
    output = f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == 0, output
    assert "py-spy is not installed" not in run.stderr, output
    profile = profiles / "roomcast-burst.txt"
    assert profile.is_file(), output
    hot = subprocess.run(
        [sys.executable, "-m", "bench.hotspots", str(profile), "--filter", "roomcast"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert hot.returncode == 0, hot.stdout + hot.stderr
    # A quick burst is mostly connects: some frame of roomcast's own must be among the top.
    assert re.search(r"^\s+\d+\.\d %  \S+ \(roomcast/", hot.stdout, re.MULTILINE), hot.stdout
