"""Logging configuration shared by the CLI and uvicorn: one format, roomcast's loggers included."""

from __future__ import annotations

import copy
from typing import Any

from uvicorn.config import LOGGING_CONFIG

__all__ = ["log_config"]


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging dict with ``roomcast.*`` loggers added at ``level``."""
    config = copy.deepcopy(LOGGING_CONFIG)
    upper = level.upper()
    config["loggers"]["roomcast"] = {"handlers": ["default"], "level": upper, "propagate": False}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"][name]["level"] = upper
    return config
