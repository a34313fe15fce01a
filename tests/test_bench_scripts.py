"""Every benchmark script still imports and parses its options (a bench that broke when code
moved went unnoticed once: failover_bench imported a module from its old place)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_bench_script_starts(script):
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout.lower()


def test_run_all_names_only_existing_scripts():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run_all
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for full, quick in run_all.BENCHES.values():
        assert (ROOT / full[0]).is_file() and (ROOT / quick[0]).is_file()
