"""The design document ships with the code and names only what exists.

A clone carries its own docs: the README links ``docs/ARCHITECTURE.md``, neither points outside
the repository, and every module or folder the architecture document names in backticks is
there, so a rename that forgets the document fails here instead of misleading a reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
DOCS = [README, ARCHITECTURE]

_NAMED_PATH = re.compile(r"`([\w./-]+(?:\.py|/))`")


def test_the_readme_links_the_design_document() -> None:
    assert ARCHITECTURE.is_file()
    assert "docs/ARCHITECTURE.md" in README.read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_doc_points_outside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert "../" not in text, [line for line in text.splitlines() if "../" in line]


def _exists(named: str) -> bool:
    """Whether ``named`` (``a/b.py``, ``b.py``, ``sdk/``) is a path of the repository, whole
    or as the tail of one under ``src/roomcast`` or ``tests``."""
    tail = named.rstrip("/")
    if (ROOT / tail).exists():
        return True
    for base in (ROOT / "src" / "roomcast", ROOT / "src", ROOT / "tests"):
        if (base / tail).exists() or any(base.rglob(tail)):
            return True
    return False


def test_every_path_the_architecture_names_exists() -> None:
    named = set(_NAMED_PATH.findall(ARCHITECTURE.read_text(encoding="utf-8")))
    assert len(named) > 20, named  # the pattern still finds the document's paths
    missing = sorted(name for name in named if not _exists(name))
    assert not missing, missing
