"""`logpipe up` / `down` / `demo`: the embedded services on one machine, no URLs given."""

from __future__ import annotations

import json
import os
import re
import signal
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
    # The demo ends with the next commands, each working when pasted into a plain shell (no
    # LOGPIPE_HOME, no activated venv, another directory, a HOME without ~/.logpipe).
    tail = demo.stdout.split("next:", 1)[1]
    commands = [line.strip() for line in tail.splitlines() if "logpipe " in line and
                line.startswith("  ") and not line.startswith("      ")]
    assert len(commands) == 3 and commands[0].endswith(" ui"), commands
    assert " search " in commands[1] and commands[2].endswith(" down"), commands
    assert all(c.startswith(f"LOGPIPE_HOME={tmp_path / 'home'} ") for c in commands), commands
    shell_env = {k: v for k, v in os.environ.items()
                 if k not in ("LOGPIPE_HOME", "VIRTUAL_ENV", "LOGPIPE_REDIS_URL",
                              "LOGPIPE_REDIS_URL_FILE", "LOGPIPE_STORE_URL")}
    shell_env.update(HOME=str(tmp_path / "elsewhere"), PATH="/usr/bin:/bin")
    (tmp_path / "elsewhere").mkdir()
    pasted = subprocess.run(["sh", "-c", commands[1]], capture_output=True, text=True,
                            env=shell_env, cwd=tmp_path / "elsewhere", timeout=300)
    assert pasted.returncode == 0, pasted.stderr
    assert "sendmail" in pasted.stdout and "Sent" in pasted.stdout
    down = subprocess.run(["sh", "-c", commands[2]], capture_output=True, text=True,
                          env=shell_env, cwd=tmp_path / "elsewhere", timeout=300)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stderr
    pids = [info["supervisor_pid"], info["broker_pid"], info["indexer_pid"], info["alerts_pid"]]
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    again = logpipe("ship", "--once", "/dev/null", env=env)
    assert again.returncode != 0 and "logpipe up" in again.stderr
    assert "Traceback" not in again.stderr


def _stats(env) -> dict:
    run = logpipe("stats", "--json", env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _workers_up(env, n: int) -> dict:
    """stats once ``n`` workers are registered (they start in the background after `up`)."""
    deadline = time.monotonic() + 300  # a hang guard, not a timing check
    while time.monotonic() < deadline:
        figures = _stats(env)
        if figures["workers"] >= n:
            return figures
        time.sleep(0.2)
    raise AssertionError(f"{n} workers never registered: {figures}")


def test_down_and_up_again_leave_no_dead_workers_and_the_ui_follows_the_broker(tmp_path):
    """After `down` + `up`, stats counts the live workers only (the AOF brought back the last
    run's registrations, of workers killed here with -9), and a running `logpipe ui` given no
    broker URL follows the new broker port instead of failing on the old one."""
    import httpx
    from rq import Worker

    from logpipe.common.broker import connect
    from logpipe.common.private import read_secret
    from tests.support.web import start_ui, stop_ui

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOGPIPE_REDIS_URL", "LOGPIPE_REDIS_URL_FILE", "LOGPIPE_STORE_URL")}
    env["LOGPIPE_HOME"] = str(home)
    up = logpipe("up", "--workers", "2", env=env)
    assert up.returncode == 0, up.stderr[-3000:]
    ui = None
    try:
        first = json.loads((home / "services.json").read_text())
        assert _workers_up(env, 2)["workers"] == 2
        ui, address = start_ui(env=env)
        base, token = address.split("/?token=")
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(base + "/health", headers=auth, timeout=60).status_code == 200
        # Kill the workers the way a crash does: their registrations stay behind.
        admin = connect(read_secret(first["url_files"]["admin"], "broker URL file"))
        killed = [w.pid for w in Worker.all(connection=admin)]
        admin.close()
        assert len(killed) == 2
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        assert "stopped" in logpipe("down", env=env).stdout
        gone = httpx.get(base + "/health", headers=auth, timeout=60)
        assert gone.status_code == 503 and "logpipe up" in gone.text

        again = logpipe("up", "--workers", "2", env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        second = json.loads((home / "services.json").read_text())
        assert second["broker"] != first["broker"]
        figures = _workers_up(env, 2)
        assert figures["workers"] == 2 and figures["workers_stale"] == 0, figures
        health = httpx.get(base + "/health", headers=auth, timeout=60)
        assert health.status_code == 200, health.text[-2000:]
        assert "Error 111" not in health.text
        assert re.search(r"live workers</td><td class=\"num\">2<", health.text), health.text
        dlq = httpx.get(base + "/dlq", headers=auth, timeout=60)
        assert dlq.status_code == 200, dlq.text[-2000:]
    finally:
        if ui is not None:
            stop_ui(ui)
        logpipe("down", env=env)


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
