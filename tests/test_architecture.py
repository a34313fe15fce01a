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


def module_cycles(package: str = "logpipe") -> list[list[str]]:
    """Groups of modules that import each other round in a circle (strongly connected parts of
    the import graph, imports inside functions included: a lazy import is still an arrow)."""
    import grimp

    graph = grimp.build_graph(package)
    modules = sorted(graph.modules)
    edges = {m: sorted(set(graph.find_modules_directly_imported_by(m)) & set(modules))
             for m in modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in modules:  # Tarjan's algorithm, iteratively (no recursion limit)
        if root in order:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                order[node] = low[node] = len(order)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in order:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], order[nxt])
                continue
            if low[node] == order[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles


def test_no_module_imports_itself_round_a_circle():
    """Inside a package too (import-linter's contracts look between packages): no two modules
    import each other, directly or round a longer circle."""
    assert module_cycles() == []


def test_the_cycle_finder_finds_a_circle(tmp_path, monkeypatch):
    pkg = tmp_path / "circ"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circ import b\n")
    (pkg / "b.py").write_text("def f():\n    from circ import c\n")
    (pkg / "c.py").write_text("import circ.a\n")
    (pkg / "d.py").write_text("import circ.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert module_cycles("circ") == [["circ.a", "circ.b", "circ.c"]]


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
