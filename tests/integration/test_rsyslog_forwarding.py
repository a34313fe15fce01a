"""Debian's real rsyslog forwards to the agent's syslog input over UDP and TCP, in each of its
documented forwarding formats; the indexer stores every message in the SQLite store with the
sender's host, program, pid and @timestamp from the header, the bare text as `message` and the
frame as received in `syslog.frame`.

rsyslogd runs in the foreground (-n) with its own config, pid file and work directory under the
test's tmp_path; applications "log" to it by sending RFC 5424 lines to its imtcp inputs, one
input per forwarding action."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from tests.integration.test_shipper_helpers import Agent, wait_for

pytestmark = pytest.mark.integration

RSYSLOGD = shutil.which("rsyslogd") or next(
    (p for p in ("/usr/sbin/rsyslogd", "/sbin/rsyslogd") if Path(p).exists()), None)

# ruleset name -> (omfwd protocol, template, TCP framing)
ACTIONS = {
    "fwd_udp": ("udp", "RSYSLOG_ForwardFormat", None),
    "fwd_tcp": ("tcp", "RSYSLOG_ForwardFormat", "traditional"),
    "trad_udp": ("udp", "RSYSLOG_TraditionalForwardFormat", None),
    "p23_tcp": ("tcp", "RSYSLOG_SyslogProtocol23Format", "octet-counted"),
}


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rsyslog_config(work: Path, inputs: dict[str, int], agent_port: int) -> str:
    out = [f'global(workDirectory="{work}")', 'module(load="imtcp")']
    for name, port in inputs.items():
        out.append(f'input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="{name}")')
    for name, (proto, template, framing) in ACTIONS.items():
        extra = f' TCP_Framing="{framing}"' if framing else ""
        out.append(f'ruleset(name="{name}") {{ action(type="omfwd" target="127.0.0.1" '
                   f'port="{agent_port}" protocol="{proto}" template="{template}"{extra}) }}')
    return "\n".join(out) + "\n"


def logpipe(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    def up():
        assert proc.poll() is None, f"rsyslogd exited:\n{log.read_text(errors='replace')}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_for(up, what=f"rsyslogd listening on {port}")


@pytest.mark.skipif(RSYSLOGD is None, reason="rsyslogd is not installed (./run tests installs "
                                              "Debian's rsyslog)")
def test_rsyslog_forwarding_formats_are_stored_with_the_header_fields(tmp_path, redis_url,
                                                                      redis_client):
    agent_port = free_port()
    agent = Agent(tmp_path, redis_url, "--syslog-udp", f"127.0.0.1:{agent_port}",
                  "--syslog-tcp", f"127.0.0.1:{agent_port}").start()
    work = tmp_path / "rsyslog"
    work.mkdir()
    inputs = {name: free_port() for name in ACTIONS}
    conf = work / "rsyslog.conf"
    conf.write_text(rsyslog_config(work, inputs, agent_port))
    rlog = work / "rsyslogd.out"
    with open(rlog, "wb") as out:
        rsyslogd = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(work / "pid")],
                                    stdout=out, stderr=subprocess.STDOUT)
    sent: dict[str, dict] = {}
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
    try:
        wait_for(lambda: agent.output().count("event=syslog_listening") == 2,
                 what="agent listening", agent=agent)
        for port in inputs.values():
            wait_port(port, rsyslogd, rlog)
        for k, (name, port) in enumerate(inputs.items()):
            lines = []
            for i in range(5):
                text = f"{name} message {i}: disk {70 + i}% full"
                host, app, pid = f"web{k}", f"app-{name.replace('_', '-')}", 1000 + 10 * k + i
                # recent stamps: the traditional format has no year, and the indexer infers it
                moment = base + timedelta(minutes=k, seconds=i)
                stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{123456 + i}+00:00"
                millis = ".000Z" if name == "trad_udp" else ".123Z"  # whole seconds only
                lines.append(f"<13>1 {stamp} {host} {app} {pid} - - {text}\n")
                sent[text] = {"host": host, "program": app, "pid": pid, "via": name,
                              "@timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S") + millis,
                              "prefix": {"p23_tcp": "<13>1 " + moment.strftime("%Y-%m-%dT"),
                                         "trad_udp": "<13>" + moment.strftime("%b %e ")
                                         }.get(name, "<13>" + moment.strftime("%Y-%m-%dT"))}
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall("".join(lines).encode())
        wait_for(lambda: redis_client.llen("logpipe:raw") >= len(sent), timeout=90,
                 what=f"{len(sent)} forwarded messages", agent=agent)
    finally:
        rsyslogd.terminate()
        rsyslogd.wait(30)
        assert agent.stop() == 0
    store = f"sqlite:///{tmp_path}/events.db"
    indexed = logpipe("index", "--redis", redis_url, "--store", store, "--workers", "1",
                      "--burst")
    assert indexed.returncode == 0, indexed.stderr
    found = logpipe("search", "--store", store, "--json", "--limit", "1000", "*")
    assert found.returncode == 0, found.stderr
    docs = [orjson.loads(line) for line in found.stdout.splitlines()]
    by_message = {d["message"]: d for d in docs}
    assert sorted(by_message) == sorted(sent), "every message once, with its bare text"
    for text, want in sent.items():
        doc = by_message[text]
        got = {k: doc.get(k) for k in ("host", "program", "pid", "@timestamp")}
        assert got == {k: want[k] for k in got}, (want["via"], doc)
        assert doc["type"] == "syslog" and doc["tags"] == []
        frame = doc["syslog"]["frame"]
        assert frame.startswith("<13>") and frame.endswith(text), (want["via"], frame)
        assert frame.startswith(want["prefix"]), (want["via"], frame)
        assert doc["path"].startswith("syslog+" + ("udp" if want["via"].endswith("udp") else "tcp"))
