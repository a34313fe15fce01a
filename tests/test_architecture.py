"""The architecture is checked, not described: no package cycles and imports one way
(import-linter contracts in pyproject.toml), lint (ruff) and types (mypy) clean on the packages.

The tools are in the ``[test]`` extra; each check runs the tool from this interpreter's
environment on the checkout, and fails with the tool's own report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["logpipe"]
# ruff does not follow the links in logpipe/: it is given the stage folders themselves
FOLDERS = ["common", "shipper", "indexer", "query", "store", "search", "services", "logpipe"]


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' (it is in the test extra)")
    return found


def _run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def test_no_package_cycles_and_imports_go_one_way():
    run = _run(_tool("lint-imports"), "--no-cache")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "broken" in run.stdout and "0 broken" in run.stdout


def test_ruff_is_clean_on_the_packages():
    run = _run(_tool("ruff"), "check", "--no-cache", *FOLDERS)
    assert "All checks passed" in run.stdout, run.stdout[-2000:]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


@pytest.mark.slow
def test_mypy_is_clean_on_the_packages():
    run = _run(_tool("mypy"), "--no-incremental", "--cache-dir", os.devnull)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


STAGES = ("common", "shipper", "indexer", "query", "store", "search", "services")


def test_code_imports_the_stages_only_through_the_logpipe_package():
    """``import common`` would work from a checkout (the folders are there) but not from a wheel,
    which holds only ``logpipe``: every import, and every dotted module name in a string
    (``python -m``, RQ job functions), says ``logpipe.<stage>``."""
    import ast
    import re

    dotted = re.compile(rf"^({'|'.join(STAGES)})\.[a-z_]+(\.[a-z_]+)*(:[A-Za-z_]+)?$")
    offenders = []
    for folder in (*STAGES, "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and dotted.match(node.value):
                    parts = node.value.split(":")[0].split(".")
                    prefixes = [ROOT.joinpath(*parts[:n]) for n in range(2, len(parts) + 1)]
                    if any(p.with_suffix(".py").exists() or (p / "__init__.py").exists() for p in prefixes):
                        names = [node.value]
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names
                              if n.split(".")[0].split(":")[0] in STAGES]
    assert not offenders, "\n".join(offenders)
