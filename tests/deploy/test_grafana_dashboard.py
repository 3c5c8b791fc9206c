"""The Grafana dashboard in ``deploy/grafana`` is built on metrics roomcast really exposes: every
name its queries use is in a real server's scrape, and the README lists every metric the
scrape describes, so neither can drift from the code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RunningServer, start_server

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "roomcast-dashboard.json"
README = ROOT / "README.md"
METRIC = re.compile(r"\b((?:roomcast|process)_[a-z0-9_]+)\b")


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server: RunningServer = start_server(
        "--insecure", "--no-examples", cwd=tmp_path_factory.mktemp("dashboard")
    )
    try:
        yield httpx.get(f"{server.http}/metrics", timeout=10).text
    finally:
        server.stop()


def families(exposition: str) -> dict[str, str]:
    """Every metric family the scrape describes, with its type (a counter by its ``_total``
    name, as the text format's ``# TYPE`` line gives it)."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.MULTILINE))


def sample_names(exposition: str) -> set[str]:
    """Every sample name the families can have, labelled series not yet seen included."""
    names = set()
    for family, kind in families(exposition).items():
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_count", f"{family}_sum"}
        else:
            names.add(family)
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def expressions() -> list[str]:
    return [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]


def test_every_metric_of_the_dashboard_is_exposed(exposition: str) -> None:
    used = {name for expr in expressions() for name in METRIC.findall(expr)}
    assert len(used) > 20, used
    assert sorted(used - sample_names(exposition)) == []


def test_the_readme_lists_every_metric(exposition: str) -> None:
    """By the name a query uses: counters with ``_total``, histograms and gauges as named."""
    readme = README.read_text(encoding="utf-8")
    listed = set(re.findall(r"`(roomcast_[a-z0-9_]+)`", readme))
    exposed = {family for family in families(exposition) if family.startswith("roomcast_")}
    assert sorted(exposed - listed) == [], "metrics the README does not list"
    assert sorted(listed - exposed) == [], "names the README lists that no metric has"


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    variables = {variable["name"] for variable in board["templating"]["list"]}
    assert variables == {"datasource", "instance"}
    assert all('instance=~"$instance"' in expr for expr in expressions())
