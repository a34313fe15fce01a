"""Shared fixtures. Real services come from tests/fixtures/*."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.secrets", "tests.fixtures.valkey", "tests.fixtures.elasticsearch",
                   "tests.fixtures.replicated"]

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LOGPIPE_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
SEED = SHARED / "seed"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """No test touches the user's ~/.logpipe or inherits URLs from the environment."""
    monkeypatch.setenv("LOGPIPE_HOME", str(tmp_path / "logpipe-home"))
    monkeypatch.delenv("LOGPIPE_REDIS_URL", raising=False)
    monkeypatch.delenv("LOGPIPE_STORE_URL", raising=False)


def corpus_file(name: str) -> Path:
    """A file from ../shared/corpus; the test is skipped cleanly on a clone without it."""
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"../shared/corpus/{name} not available in this checkout")
    return path


def corpus_lines(limit_per_file: int = 1500) -> list[str]:
    """The first lines of every ../shared/corpus log; none on a clone without it."""
    lines: list[str] = []
    if CORPUS.is_dir():
        for path in sorted(CORPUS.glob("*.log")):
            text = path.read_text(encoding="utf-8", errors="replace")
            lines += text.splitlines()[:limit_per_file]
    return lines


def seed_file(name: str) -> Path:
    path = SEED / name
    if not path.exists():
        pytest.skip(f"../shared/seed/{name} not available in this checkout")
    return path
