"""`logpipe up` / `down` / `demo`: the embedded services on one machine, no URLs given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def logpipe(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_demo_runs_the_whole_pipeline_and_down_stops_it(tmp_path):
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "home")}
    demo = logpipe("demo", "--lines", "400", env=env)
    assert demo.returncode == 0, demo.stderr[-3000:]
    # Parsed sendmail deliveries found by a search, with their fields.
    assert "program:sendmail" in demo.stdout
    assert "stat" in demo.stdout and "Sent" in demo.stdout
    assert "one message's whole story" in demo.stdout
    info = json.loads((tmp_path / "home" / "services.json").read_text())
    assert info["ready"] and info["store_url"].startswith("sqlite:///")
    # With no URL flags, other commands find the embedded services.
    stats = logpipe("stats", "--json", env=env)
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["totals"]["indexed"] + figures["totals"].get("dead_lettered", 0) == 400
    assert figures["workers"] == 2
    search = logpipe("search", "--json", "--limit", "3", "program:sendmail", env=env)
    assert search.returncode == 0 and len(search.stdout.splitlines()) == 3
    down = logpipe("down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    pids = [info["supervisor_pid"], info["broker_pid"], info["indexer_pid"]]
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    again = logpipe("ship", "--once", "/dev/null", env=env)
    assert again.returncode != 0 and "logpipe up" in again.stderr
    assert "Traceback" not in again.stderr


def test_up_with_the_elasticsearch_node_is_one_flag_away(tmp_path):
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "home")}
    up = logpipe("up", "--store", "elasticsearch", "--workers", "1", env=env)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        info = json.loads((tmp_path / "home" / "services.json").read_text())
        assert info["store_url"].startswith("http://127.0.0.1:") and info["es_pid"]
        log = tmp_path / "maillog"
        log.write_text("Nov 28 10:00:01 mx1 sendmail[7]: r4F2abc0123456: from=<a@b.org>, "
                       "size=1234, class=0, nrcpts=1, msgid=<x@b.org>, proto=ESMTP, "
                       "daemon=MTA, relay=localhost [127.0.0.1]\n")
        shipped = logpipe("ship", "--type", "mail", "--once", str(log), env=env)
        assert shipped.returncode == 0, shipped.stderr
        found = None
        deadline = time.monotonic() + 300  # the background workers index it; a hang guard only
        while time.monotonic() < deadline:
            found = logpipe("search", "--json", "qid:r4F2abc0123456", env=env)
            if found.stdout.strip():
                break
            time.sleep(0.2)
        doc = json.loads(found.stdout.splitlines()[0])
        assert doc["from"] == "<a@b.org>" and doc["size"] == 1234 and doc["relayip"] == "127.0.0.1"
    finally:
        down = logpipe("down", env=env)
    assert "stopped" in down.stdout
    assert not os.path.exists(f"/proc/{info['es_pid']}") or \
        open(f"/proc/{info['es_pid']}/stat").read().split()[2] == "Z"
