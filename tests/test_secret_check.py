"""The run-wide secret check (tests/fixtures/secrets.py) fails a session that leaks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

INNER = '''
import subprocess, sys
from tests.fixtures.secrets import register_secret

def test_prints_a_secret():
    register_secret("s3cr3t-{kind}-value")
    {body}
'''


def _run(tmp_path, kind, body):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.fixtures.secrets"]\n')
    (tmp_path / "test_inner.py").write_text(INNER.format(kind=kind, body=body))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(tmp_path / "test_inner.py")], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


def test_a_secret_in_a_subprocess_output_fails_the_run(tmp_path):
    inner = _run(tmp_path, "sub", 'subprocess.run([sys.executable, "-c", '
                                  '"print(\'s3cr3t-sub-value\')"], capture_output=True)')
    assert inner.returncode == 1, inner.stdout
    assert "SECRET CHECK FAILED" in inner.stdout and "test_prints_a_secret" in inner.stdout
    assert "1 passed" in inner.stdout  # the test itself passed: the check failed the session


def test_a_secret_printed_by_a_test_fails_the_run(tmp_path):
    inner = _run(tmp_path, "print", 'print("s3cr3t-print-value")')
    assert inner.returncode == 1 and "SECRET CHECK FAILED" in inner.stdout


def test_a_clean_run_passes(tmp_path):
    inner = _run(tmp_path, "clean", 'print("nothing to see")')
    assert inner.returncode == 0, inner.stdout
