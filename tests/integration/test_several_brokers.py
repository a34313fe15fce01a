"""Several brokers (issue 15): a shipper given two broker URLs spreads batches over both and moves to the other
when one stops, offsets kept right; ``logpipe index`` given both drains both. Nothing lost, nothing doubled in
the store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.services.valkey import ValkeyServer
from tests.integration.test_shipper_helpers import Agent, Writer, records, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def two_valkeys(tmp_path):
    servers = [ValkeyServer(data_dir=tmp_path / f"valkey-{name}", appendonly=True) for name in ("a", "b")]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.cleanup()


def _lines(url: str) -> list[str]:
    client = connect(url)
    try:
        return [r["line"] for r in records(client, Keys().raw)]
    finally:
        client.close()


def test_shipper_spreads_over_two_brokers_and_moves_off_a_stopped_one(tmp_path, two_valkeys):
    a, b = two_valkeys
    logs = tmp_path / "logs"
    logs.mkdir()
    writer = Writer(logs / "app.log", "brokers")
    writer.write(20_000)
    agent = Agent(tmp_path, f"{a.url} {b.url}", "--batch-lines", "500", str(logs / "*.log")).start()
    try:
        wait_for(lambda: len(_lines(a.url)) + len(_lines(b.url)) >= 20_000, timeout=120,
                 what="the first lines on the brokers", agent=agent)
        on_a, on_b = len(_lines(a.url)), len(_lines(b.url))
        assert on_a >= 5000 and on_b >= 5000, f"batches were not spread: {on_a} on a, {on_b} on b"
        b.stop()  # SIGTERM: what b holds is kept (AOF) and comes back with it
        writer.write(20_000)
        wait_for(lambda: len(_lines(a.url)) >= on_a + 20_000, timeout=120, what="the rest on broker a",
                 agent=agent)
        b.start()
        kept_on_b = len(_lines(b.url))
        assert kept_on_b >= on_b  # what b confirmed before it stopped came back with it
        # b is tried again once its backoff is over: keep writing until batches reach it again
        for _ in range(240):
            writer.write(500)
            if len(_lines(b.url)) > kept_on_b:
                break
            time.sleep(0.25)
        wait_for(lambda: set(_lines(a.url)) | set(_lines(b.url)) >= set(writer.written), timeout=120,
                 what="every line on a broker", agent=agent)
    finally:
        code = agent.stop()
    assert code == 0
    out = agent.output()
    assert out.count("event=broker_down") == 1 and "sending to the other brokers" in out, out[-3000:]
    assert out.count("event=broker_up") == 1, out[-3000:]
    assert len(_lines(b.url)) > kept_on_b, "broker b got nothing after it came back"

    db = tmp_path / "events.db"
    run = subprocess.run([sys.executable, "-m", "logpipe.common.cli", "index", "--redis", f"{a.url} {b.url}", "--store",
                          f"sqlite:///{db}", "--workers", "1", "--burst"], capture_output=True, text=True,
                         timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert a.password not in run.stdout + run.stderr and b.password not in run.stdout + run.stderr
    conn = sqlite3.connect(db)
    stored = [row[0] for row in conn.execute("SELECT doc ->> '$.message' FROM events")]
    conn.close()
    assert len(stored) == len(writer.written) and set(stored) == set(writer.written)
    for server in (a, b):
        client = connect(server.url)
        assert client.llen(Keys().raw) == 0 and client.zcard(Keys().batches) == 0
        client.close()
