"""The agent end to end against a real Valkey: files, globs, stdin, syslog, multiline,
backpressure, status, clean stop, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
import socket
import subprocess

import orjson
import pytest

from logpipe.common.private import write_private
from logpipe.common.record import record_id
from tests.integration.test_shipper_helpers import (Agent, Writer, assert_delivered, records,
                                                    ship_cmd, wait_for)

pytestmark = pytest.mark.integration


def _run(tmp_path, *args, input=None, env_extra=None):
    import os
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "home"), **(env_extra or {})}
    env.pop("LOGPIPE_REDIS_URL", None) if not env_extra or "LOGPIPE_REDIS_URL" not in env_extra \
        else None
    return subprocess.run(ship_cmd(*args), input=input, capture_output=True, env=env,
                          timeout=120)


def test_once_ships_every_line_and_a_rerun_ships_nothing(tmp_path, redis_url, redis_client):
    log = tmp_path / "mail.log"
    w = Writer(log, "once")
    w.write(2500)
    with open(log, "a") as f:
        f.write("\n\n")                     # empty lines are skipped
    args = ("--redis", redis_url, "--once", "--type", "mail", "--field", "env=prod",
            "--list", "custom:raw", str(log))
    r = _run(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    recs = records(redis_client, "custom:raw")
    assert [x["line"] for x in recs] == w.written
    first = recs[0]
    assert first["type"] == "mail" and first["fields"] == {"env": "prod"}
    assert first["path"] == str(log) and first["offset"] == 0
    reg = json.loads((tmp_path / "home" / "shipper" / "registry.json").read_text())
    (entry_key, entry), = reg["files"].items()
    assert entry["offset"] == log.stat().st_size
    assert first["id"] == record_id(first["host"], entry_key, 0)
    assert r.stderr.count(b"event=") >= 2 and b"Traceback" not in r.stderr
    # a second run starts from the registry: nothing new, nothing again
    assert _run(tmp_path, *args).returncode == 0
    assert redis_client.llen("custom:raw") == 2500
    w.write(10)
    assert _run(tmp_path, *args).returncode == 0
    assert [x["line"] for x in records(redis_client, "custom:raw")] == w.written


def test_stdin_and_the_embedded_broker_from_services_json(tmp_path, redis_url, redis_client):
    home = tmp_path / "home"
    home.mkdir()
    # `logpipe up` records where the URL files are (0600), never the URLs themselves.
    url_file = write_private(home / "shipper.url", redis_url)
    (home / "services.json").write_text(json.dumps({"url_files": {"shipper": str(url_file)},
                                                    "ready": True}))
    r = _run(tmp_path, "--type", "app", "-", input=b"one\ntwo\n\xffbad\nlast-no-newline")
    assert r.returncode == 0, r.stderr
    recs = records(redis_client)
    assert [x["line"] for x in recs] == ["one", "two", "\ufffdbad", "last-no-newline"]
    assert recs[2]["tags"] == ["invalid_utf8"] and recs[0]["path"] == "-"
    assert len({x["id"] for x in recs}) == 4


def test_clear_errors_without_traceback(tmp_path):
    r = _run(tmp_path, "--once", str(tmp_path / "x.log"))
    assert r.returncode == 2
    assert b"logpipe up" in r.stderr and b"--redis" in r.stderr and b"Traceback" not in r.stderr
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[shipper]\nredis = "redis://127.0.0.1:1/0"\n\n[[input]]\ninput = "file"\n'
                   'paths = ["/tmp/x"]\nmultiline = { pattern = "[" }\n')
    r = _run(tmp_path, "--config", str(cfg))
    assert r.returncode == 2 and b"Traceback" not in r.stderr
    assert f"{cfg}:7:".encode() in r.stderr and b"regular expression" in r.stderr
    r = _run(tmp_path, "--redis", "redis://127.0.0.1:1/0")
    assert r.returncode == 2 and b"nothing to ship" in r.stderr


def test_follows_globs_multiline_status_and_sigterm(tmp_path, redis_url, redis_client):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("2024-01-01 first\n  at x\n  at y\n2024-01-01 second\n")
    agent = Agent(tmp_path, redis_url, "--multiline-pattern", r"^\s", "--multiline-timeout",
                  "0.5", "--status-interval", "1", str(logs / "*.log")).start()
    try:
        wait_for(lambda: redis_client.llen("logpipe:raw") == 2, what="a.log", agent=agent)
        (logs / "b.log").write_text("2024-01-02 new file\n  continued\n")  # picked up later
        (logs / "skip.txt").write_text("not matched\n")
        wait_for(lambda: redis_client.llen("logpipe:raw") == 3, what="b.log", agent=agent)
        wait_for(lambda: agent.registry.with_name("registry.json.status.json").exists(),
                 what="status file", agent=agent)
        r = _run(tmp_path, "--registry", str(agent.registry), "--status")
        assert r.returncode == 0
        assert b"running" in r.stdout and b"a.log" in r.stdout and b"b.log" in r.stdout
        status_file = agent.registry.with_name("registry.json.status.json")

        def per_file():  # the agent rewrites its status every couple of seconds
            status = json.loads(status_file.read_text())
            return {Path(s["path"]).name: s for s in status["sources"]}

        wait_for(lambda: per_file().get("b.log", {}).get("lines") == 1, what="status of b.log",
                 agent=agent)
        files = per_file()
        assert files["a.log"]["lines"] == 2 and files["a.log"]["lag"] == 0
        assert "lines_per_s" in files["b.log"]
    finally:
        assert agent.stop() == 0
    lines = [x["line"] for x in records(redis_client)]
    assert lines == ["2024-01-01 first\n  at x\n  at y", "2024-01-01 second",
                     "2024-01-02 new file\n  continued"]
    out = agent.output()
    assert "event=stopped" in out and "event=status" in out
    reg = json.loads(agent.registry.read_text())
    assert sorted(e["offset"] for e in reg["files"].values()) == sorted(
        [(logs / "a.log").stat().st_size, (logs / "b.log").stat().st_size])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_syslog_udp_and_tcp_both_framings(tmp_path, redis_url, redis_client):
    port = _free_port()
    agent = Agent(tmp_path, redis_url, "--syslog-udp", f"127.0.0.1:{port}",
                  "--syslog-tcp", f"127.0.0.1:{port}").start()
    try:
        wait_for(lambda: agent.output().count("event=syslog_listening") == 2, what="listening",
                 agent=agent)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"<34>Oct 11 22:14:15 dev1 su[12]: udp message", ("127.0.0.1", port))
        m5 = "<165>1 2003-10-11T22:14:15.003Z dev2 app - ID1 - tcp octet counted".encode()
        with socket.create_connection(("127.0.0.1", port)) as t:
            t.sendall(b"%d %s" % (len(m5), m5) + b"<13>Oct 11 22:14:16 dev3 app: tcp newline\n")
        wait_for(lambda: redis_client.llen("logpipe:raw") == 3, what="3 messages", agent=agent)
    finally:
        assert agent.stop() == 0
    recs = {r["host"]: r for r in records(redis_client)}
    assert recs["dev1"]["line"] == "Oct 11 22:14:15 dev1 su[12]: udp message"
    assert recs["dev1"]["fields"]["syslog"]["severity"] == "crit"
    assert recs["dev1"]["type"] == "syslog" and recs["dev1"]["path"].startswith("syslog+udp://")
    assert recs["dev2"]["fields"]["syslog"]["format"] == "rfc5424"
    assert recs["dev2"]["fields"]["syslog"]["appname"] == "app"
    assert recs["dev3"]["line"].endswith("tcp newline")


def test_backpressure_pauses_reading_and_resumes(tmp_path, redis_url, redis_client):
    log = tmp_path / "big.log"
    w = Writer(log, "bp")
    w.write(3000)
    agent = Agent(tmp_path, redis_url, "--batch-lines", "100", "--high-water", "500",
                  "--low-water", "200", str(log)).start()
    taken = []
    try:
        wait_for(lambda: "event=backpressure_pause" in agent.output(), what="pause", agent=agent)
        # paused: nothing dropped, nothing more pushed than one batch over the mark
        assert 500 <= redis_client.llen("logpipe:raw") < 600

        def drain():
            while True:
                item = redis_client.lpop("logpipe:raw")
                if item is None:
                    break
                taken.append(orjson.loads(item))
            return len(taken) == len(w.written)
        wait_for(drain, what="everything via draining", agent=agent)
    finally:
        assert agent.stop() == 0
    assert "event=backpressure_resume" in agent.output()
    assert_delivered(taken, w.written, 100)


def test_start_at_end_skips_the_backlog_of_files_present_at_the_first_start(
        tmp_path, redis_url, redis_client):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "old.log").write_text("backlog 1\nbacklog 2\n")
    config = tmp_path / "shipper.toml"
    config.write_text(f'[[input]]\ninput = "file"\npaths = ["{logs}/*.log"]\n'
                      f'type = "app"\nstart_at = "end"\n')
    agent = Agent(tmp_path, redis_url, "--config", str(config)).start()
    try:
        wait_for(lambda: "event=file_opened" in agent.output(), what="file opened", agent=agent)
        with open(logs / "old.log", "a") as f:
            f.write("new 1\n")
        (logs / "later.log").write_text("from a file created later\n")  # read from its start
        wait_for(lambda: redis_client.llen("logpipe:raw") == 2, what="new lines", agent=agent)
    finally:
        assert agent.stop() == 0
    assert sorted(x["line"] for x in records(redis_client)) == \
        ["from a file created later", "new 1"]


def test_once_exits_0_when_its_last_push_reaches_the_high_mark(tmp_path, redis_url,
                                                                redis_client):
    """A backfill before any indexer runs: every line is confirmed and the list is at the mark.
    Nothing is left to send, so nothing is waited for (this used to wait for ever)."""
    log = tmp_path / "backfill.log"
    w = Writer(log, "hw")
    w.write(1000)
    agent = Agent(tmp_path, redis_url, "--once", "--batch-lines", "100", "--high-water", "1000",
                  str(log)).start()
    try:
        code = agent.proc.wait(120)  # a guard against a hang, not a timing assertion
    finally:
        agent.stop()
    out = agent.output()
    assert code == 0, out
    assert "event=backpressure_pause" in out  # it really was at the mark
    assert "event=waiting_for_room" not in out
    assert redis_client.llen("logpipe:raw") == 1000
    assert [r["line"] for r in records(redis_client)] == w.written


def test_once_with_unsent_lines_waits_says_so_once_and_finishes(tmp_path, redis_url,
                                                                 redis_client):
    log = tmp_path / "more.log"
    w = Writer(log, "wait")
    w.write(1000)
    agent = Agent(tmp_path, redis_url, "--once", "--batch-lines", "50", "--high-water", "200",
                  "--low-water", "100", str(log)).start()
    taken = []
    try:
        wait_for(lambda: "event=waiting_for_room" in agent.output(), what="waiting_for_room",
                 agent=agent)
        assert agent.proc.poll() is None  # lines are unread: it must wait, not exit
        line = next(l for l in agent.output().splitlines() if "event=waiting_for_room" in l)
        assert "list=logpipe:raw" in line and "resume_below=100" in line
        assert "unread_input=yes" in line

        def drain_until_exit():
            while (item := redis_client.lpop("logpipe:raw")) is not None:
                taken.append(orjson.loads(item)["line"])
            return agent.proc.poll() is not None
        wait_for(drain_until_exit, timeout=120, what="the agent to finish", agent=agent)
        while (item := redis_client.lpop("logpipe:raw")) is not None:
            taken.append(orjson.loads(item)["line"])
    finally:
        code = agent.stop()
    out = agent.output()
    assert code == 0, out
    assert taken == w.written
    pauses = out.count("event=backpressure_pause")
    assert pauses >= 1 and out.count("event=waiting_for_room") <= pauses, out  # once per pause
