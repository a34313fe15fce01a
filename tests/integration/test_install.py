"""logpipe as users install it: a wheel in a fresh virtualenv, not the editable checkout.

The agent install (no extras) is what goes on every mail and web server: it must ship with only
the base dependencies, and must not even import the indexer's (rq, elasticsearch, regex, luqum).
The ``[indexer]`` install must run a burst of the indexer from the installed package.
pip may use its cache and the network to fetch the dependencies.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from logpipe.common.broker import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INDEXER_ONLY = ("rq", "elasticsearch", "regex", "luqum")
# not installed for the agent at all: typer 0.29 parses every option through pydantic, whose
# import and adapters cost every command ~80 ms of CPU at start (pyproject.toml keeps typer below)
NOT_FOR_THE_AGENT = INDEXER_ONLY + ("pydantic",)
# Everything a build reads: the packages pyproject.toml includes, and what they ship.
SOURCES = ("pyproject.toml", "README.md", "logpipe", "common", "shipper", "indexer", "query", "store",
           "search", "services", "deploy")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (the build leaves nothing in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "target", "*.so")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=junk)
        elif path.exists():
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(src)],
                cwd=src, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(out.glob("logpipe-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def run(argv, cwd, timeout=300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or clean_env(cwd))


def clean_env(home: Path) -> dict:
    """No path leads back to the checkout; state goes under the test's own directory."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LOGPIPE_REDIS_URL", "LOGPIPE_STORE_URL")}
    env["LOGPIPE_HOME"] = str(Path(home) / "logpipe-home")
    return env


def fresh_venv(where: Path, requirement: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300)
    py = where / "bin" / "python"
    installed = run([py, "-m", "pip", "install", requirement], cwd=where.parent, timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return py


def test_agent_install_without_extras_ships_to_valkey(tmp_path, wheel, redis_url):
    py = fresh_venv(tmp_path / "venv", str(wheel))
    logpipe = tmp_path / "venv" / "bin" / "logpipe"
    log = tmp_path / "app.log"
    lines = [f"install-test line {i} user=u{i % 7}" for i in range(500)]
    log.write_text("\n".join(lines) + "\n")

    # Nothing of the indexer's is installed (nor pydantic) ...
    probe = run([py, "-c", "import importlib.util, json; print(json.dumps("
                 f"[m for m in {NOT_FOR_THE_AGENT!r} if importlib.util.find_spec(m)]))"],
                cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == []
    # ... and the code runs from the venv, not from the checkout.
    where = run([py, "-c", "import logpipe.common, logpipe.shipper; print(logpipe.common.__file__)"], cwd=tmp_path)
    assert str(tmp_path / "venv") in where.stdout, where.stdout + where.stderr

    helped = run([logpipe, "--help"], cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "ship" in helped.stdout and "Traceback" not in helped.stderr
    shipped = run([logpipe, "ship", "--redis", redis_url, "--type", "app", "--once", log],
                  cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    status = run([logpipe, "ship", "--status"], cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    assert str(log) in status.stdout

    client = connect(redis_url)
    records = [orjson.loads(v) for v in client.lrange("logpipe:raw", 0, -1)]
    client.close()
    assert [r["line"] for r in records] == lines
    assert {r["type"] for r in records} == {"app"}

    # The same commands in one interpreter: none of them imports an indexer-only module.
    script = (
        "import sys, json\n"
        "from logpipe.common.cli import main\n"
        "codes = [main(['--help']), main(['ship', '--help']), main(['ship', '--status']),\n"
        f"         main(['ship', '--redis', {redis_url!r}, '--once', {str(log)!r}])]\n"
        f"print(json.dumps({{'codes': codes, 'imported': sorted(m for m in {INDEXER_ONLY!r} "
        "if m in sys.modules)}))\n")
    probe = run([py, "-c", script], cwd=tmp_path)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result == {"codes": [0, 0, 0, 0], "imported": []}


def test_indexer_install_runs_a_burst_into_sqlite(tmp_path, wheel, redis_url):
    py = fresh_venv(tmp_path / "venv", f"{wheel}[indexer]")
    logpipe = tmp_path / "venv" / "bin" / "logpipe"
    where = run([py, "-c", "import logpipe.indexer; print(logpipe.indexer.__file__)"], cwd=tmp_path)
    assert str(tmp_path / "venv") in where.stdout, where.stdout + where.stderr
    from logpipe.indexer.grok import native
    from logpipe.query import analyzer
    if native._pcre is not None:
        # built here (libpcre2's headers are installed), so the wheel carries the grok C module
        pcre = run([py, "-c", "from logpipe.indexer.grok import native; print(native.available())"],
                   cwd=tmp_path)
        assert pcre.stdout.split() == ["True"], pcre.stdout + pcre.stderr
    if analyzer._ascii_body is not analyzer._ascii_body_re:
        # and the full-text body's C module (query/_fts.c), which the embedded store uses
        fts = run([py, "-c", "from logpipe.query import analyzer; "
                   "print(analyzer._ascii_body.__module__)"], cwd=tmp_path)
        assert fts.stdout.split() == ["logpipe.query._fts"], fts.stdout + fts.stderr

    log = tmp_path / "maillog"
    lines = [f"Nov 28 10:00:{i % 60:02d} mx1 sendmail[{100 + i}]: r4F{i:011d}: "
             f"to=<user{i}@example.org>, delay=00:00:01, mailer=esmtp, stat=Sent (ok {i})"
             for i in range(300)]
    log.write_text("\n".join(lines) + "\n")
    store = f"sqlite:///{tmp_path / 'events.db'}"
    shipped = run([logpipe, "ship", "--redis", redis_url, "--type", "mail", "--once", log],
                  cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    indexed = run([logpipe, "index", "--redis", redis_url, "--store", store, "--workers", "1",
                   "--burst", "--batch-size", "100"], cwd=tmp_path, timeout=600)
    assert indexed.returncode == 0, indexed.stdout + indexed.stderr
    found = run([logpipe, "search", "--store", store, "--json", "--limit", "1000",
                 "program:sendmail"], cwd=tmp_path)
    assert found.returncode == 0, found.stdout + found.stderr
    docs = [json.loads(line) for line in found.stdout.splitlines()]
    assert sorted(d["message"] for d in docs) == sorted(lines)
    assert {d["qid"] for d in docs} == {f"r4F{i:011d}" for i in range(300)}


def test_wheel_exposes_one_package_beside_other_common_and_search_packages(tmp_path, wheel):
    """Another distribution's top-level ``common`` and ``search`` packages and logpipe live in one venv:
    the wheel installs only ``logpipe``, so neither shadows the other."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).stdout.strip())
    for name in ("common", "search"):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f"OWNER = 'other-{name}'\n")
    installed = run([py, "-m", "pip", "install", f"{wheel}[indexer]"], cwd=tmp_path, timeout=900)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    listed = run([py, "-c", "import importlib.metadata as m; print(m.distribution('logpipe').read_text('top_level.txt') "
                  "or '')"], cwd=tmp_path)
    tops = {line for line in listed.stdout.split() if line}
    assert tops in (set(), {"logpipe"}), tops
    files = run([py, "-c", "import importlib.metadata as m; "
                 "print('\\n'.join(sorted({str(f).split('/')[0] for f in m.distribution('logpipe').files})))"],
                cwd=tmp_path)
    roots = {r for r in files.stdout.split() if not r.endswith((".dist-info", ".data")) and r != ".."}
    assert roots == {"logpipe"}, roots

    both = run([py, "-c", "import common, search, logpipe.common.cli, logpipe.search.cli; "
                "print(common.OWNER, search.OWNER, logpipe.common.cli.__name__)"], cwd=tmp_path)
    assert both.returncode == 0, both.stdout + both.stderr
    assert both.stdout.split() == ["other-common", "other-search", "logpipe.common.cli"]
    helped = run([venv / "bin" / "logpipe", "grok", "--help"], cwd=tmp_path)
    assert helped.returncode == 0 and "Traceback" not in helped.stderr, helped.stdout + helped.stderr
