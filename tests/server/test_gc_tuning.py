"""The standalone server's garbage-collector tuning, checked in a child process."""

from __future__ import annotations

import subprocess
import sys

from roomcast.server.gc_tuning import FULL_COLLECTION_THRESHOLD


def test_tuning_freezes_startup_objects_and_makes_full_collections_rarer() -> None:
    code = (
        "import gc\n"
        "from roomcast.server.gc_tuning import tune_garbage_collector\n"
        "young, middle, _ = gc.get_threshold()\n"
        "tune_garbage_collector()\n"
        "print(gc.get_freeze_count() > 0, gc.get_threshold() == (young, middle, "
        f"{FULL_COLLECTION_THRESHOLD}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout.split() == ["True", "True"]
