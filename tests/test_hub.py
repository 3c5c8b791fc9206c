"""Hub, as an embedding app makes it: what it says about the settings it is given."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from roomcast.hub import Hub
from roomcast.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ROOMCAST_"):
            monkeypatch.delenv(name)


def test_a_hub_warns_once_per_key_its_settings_do_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"client": {"insecure": True, "allowed_origin": ["x"]}}))
    with caplog.at_level(logging.WARNING, logger="roomcast.hub"):
        Hub(Settings.load(config_file=path))
    warnings = [r.getMessage() for r in caplog.records if r.name == "roomcast.hub"]
    assert warnings == [
        f"unknown config key client.allowed_origin in config file {path}: roomcast does not "
        "read it, so it has no effect"
    ]


def test_a_hub_with_clean_settings_warns_about_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="roomcast.hub"):
        Hub(Settings.load(client={"insecure": True}))
    assert [r for r in caplog.records if r.name == "roomcast.hub"] == []
