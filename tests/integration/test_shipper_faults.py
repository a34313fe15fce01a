"""Fault tests against a real Valkey: the broker dies, files rotate and shrink, the agent is
killed with -9. Each ends with every written line on the list exactly once, or a few lines of at
most one batch twice with identical ids."""

from __future__ import annotations

import os
import shutil

import pytest

from logpipe.common.broker import connect
from tests.integration.test_shipper_helpers import (Agent, Writer, assert_delivered, records,
                                                    wait_for)

pytestmark = pytest.mark.integration
BATCH = 100


def _delivered(client, written) -> bool:
    return set(r["line"] for r in records(client)) >= set(written)


def test_broker_killed_and_restarted_mid_stream(tmp_path, own_valkey):
    logs = tmp_path / "logs"
    logs.mkdir()
    w = Writer(logs / "app.log", "broker")
    w.write(2000)
    client = connect(own_valkey.url)
    agent = Agent(tmp_path, own_valkey.url, "--batch-lines", str(BATCH), str(logs / "*.log")).start()
    try:
        wait_for(lambda: client.llen("logpipe:raw") >= 500, what="first records", agent=agent)
        client.close()
        own_valkey.kill()
        w.write(3000)  # written while the broker is down: held, not lost
        wait_for(lambda: "event=broker_down" in agent.output(), what="broker_down", agent=agent)
        own_valkey.start()
        client = connect(own_valkey.url)
        w.write(1000)
        wait_for(lambda: _delivered(client, w.written), timeout=90, what="all lines", agent=agent)
    finally:
        code = agent.stop()
    assert code == 0
    out = agent.output()
    assert out.count("event=broker_down") == 1, out   # one line per state change,
    assert out.count("event=broker_up") == 1, out     # not one per retry
    assert_delivered(records(client), w.written, BATCH)
    client.close()


def _config(tmp_path, logs, grace=0.3):
    cfg = tmp_path / "shipper.toml"
    cfg.write_text(f"""
[shipper]
batch_lines = {BATCH}

[[input]]
input = "file"
paths = ["{logs}/app.log"]
type = "app"
rotate_grace = {grace}
scan_interval = 0.2
""")
    return cfg


def test_rotation_rename_and_create_under_load(tmp_path, redis_url, redis_client):
    logs = tmp_path / "logs"
    logs.mkdir()
    w = Writer(logs / "app.log", "rename")
    w.write(3000)
    agent = Agent(tmp_path, redis_url, "--config", str(_config(tmp_path, logs))).start()
    try:
        wait_for(lambda: redis_client.llen("logpipe:raw") >= 200, what="records", agent=agent)
        w.write(2000)                                     # likely still unread at rotation time
        with open(logs / "app.log", "a") as f:            # an unterminated last line
            f.write("rename last line without newline")
        os.rename(logs / "app.log", logs / "app.log.1")   # logrotate's default ...
        w.write(2000)                                     # ... and the new file
        w.written.append("rename last line without newline")
        wait_for(lambda: _delivered(redis_client, w.written), what="all lines", agent=agent)
        wait_for(lambda: "event=file_released" in agent.output(), what="old file released",
                 agent=agent)
    finally:
        assert agent.stop() == 0
    recs = records(redis_client)
    assert_delivered(recs, w.written, BATCH)
    paths = {r["path"] for r in recs}
    assert paths == {str(logs / "app.log")}  # the old file's records carry the name it had
    offsets = sorted((r["offset"], r["id"]) for r in recs if r["line"].endswith("0000001 user=u1"
                                                                                  " msg=\"hello there\""))
    assert offsets and offsets[0][0] == 0


def test_rotation_copytruncate_under_load(tmp_path, redis_url, redis_client):
    logs = tmp_path / "logs"
    logs.mkdir()
    w = Writer(logs / "app.log", "copytrunc")
    w.write(3000)
    agent = Agent(tmp_path, redis_url, "--config", str(_config(tmp_path, logs))).start()
    try:
        # copytruncate loses what the writer adds between copy and truncate (logrotate's own
        # race); the agent must not lose anything else: wait until it caught up, then rotate
        wait_for(lambda: _delivered(redis_client, w.written), what="first lines", agent=agent)
        shutil.copyfile(logs / "app.log", logs / "app.log.1")
        with open(logs / "app.log", "r+") as f:
            f.truncate(0)
        w.write(500)  # shorter than before: the size drops below the agent's offset
        wait_for(lambda: _delivered(redis_client, w.written), what="lines after truncation",
                 agent=agent)
        w.write(1500)
        wait_for(lambda: _delivered(redis_client, w.written), what="all lines", agent=agent)
    finally:
        assert agent.stop() == 0
    assert "event=file_truncated" in agent.output()
    assert_delivered(records(redis_client), w.written, BATCH)


def test_truncated_and_rewritten_past_old_offset(tmp_path, redis_url, redis_client):
    """The file shrinks and grows beyond the old offset before the agent looks again: the
    changed first bytes give it away, and the new content is read from 0."""
    logs = tmp_path / "logs"
    logs.mkdir()
    w = Writer(logs / "app.log", "trunc-a")
    w.write(500)
    agent = Agent(tmp_path, redis_url, "--config", str(_config(tmp_path, logs))).start()
    try:
        wait_for(lambda: _delivered(redis_client, w.written), what="first lines", agent=agent)
        w2 = Writer(logs / "app.log", "trunc-b")
        new = logs / "new.tmp"
        w2.write(3000, path=new)               # much longer than the old content
        os.replace(new, logs / "app.log.tmp")
        with open(logs / "app.log", "r+b") as dst, open(logs / "app.log.tmp", "rb") as src:
            dst.truncate(0)
            dst.write(src.read())              # same inode, new content past the old size
        wait_for(lambda: _delivered(redis_client, w.written + w2.written), what="rewritten lines",
                 agent=agent)
    finally:
        assert agent.stop() == 0
    assert_delivered(records(redis_client), w.written + w2.written, BATCH)


def test_agent_killed_with_sigkill_between_batches_and_restarted(tmp_path, redis_url,
                                                                 redis_client):
    logs = tmp_path / "logs"
    logs.mkdir()
    w = Writer(logs / "a.log", "kill-a")
    w2 = Writer(logs / "b.log", "kill-b")
    w.write(15000)
    w2.write(5000)
    args = ("--batch-lines", str(BATCH), str(logs / "*.log"))
    agent = Agent(tmp_path, redis_url, *args).start()
    wait_for(lambda: redis_client.llen("logpipe:raw") >= 3000, what="some batches", agent=agent)
    agent.kill9()
    shipped_before = redis_client.llen("logpipe:raw")
    w.write(2000)
    agent = Agent(tmp_path, redis_url, *args).start()
    everything = w.written + w2.written
    try:
        wait_for(lambda: _delivered(redis_client, everything), timeout=90, what="all lines",
                 agent=agent)
    finally:
        assert agent.stop() == 0
    recs = records(redis_client)
    assert shipped_before < len(everything)  # the kill really happened mid-stream
    assert_delivered(recs, everything, BATCH)


def test_corrupt_registry_is_moved_aside(tmp_path, redis_url, redis_client):
    logs = tmp_path / "logs"
    logs.mkdir()
    w = Writer(logs / "app.log", "corrupt")
    w.write(300)
    reg = tmp_path / "registry.json"
    reg.write_text('{"version": 1, "files": {"x": ')
    agent = Agent(tmp_path, redis_url, "--once", str(logs / "app.log"), registry=reg).start()
    assert agent.proc.wait(60) == 0
    out = agent.output()
    assert "event=registry_corrupt" in out and "Traceback" not in out
    assert list(tmp_path.glob("registry.json.corrupt-*"))
    assert_delivered(records(redis_client), w.written, BATCH)
