"""Broker failover with nothing lost (issue 15): a Valkey primary, a replica and three sentinels on loopback.

100,000 lines are shipped through a ``redis+sentinel://`` URL while the primary is killed with -9 mid-run. Pushes
are confirmed to the shipper's registry only after ``WAIT`` says the replica holds them, so after the sentinels
promote the replica and ``logpipe index --burst`` drains it, exactly 100,000 distinct lines are in the store
(SQLite, which keeps one row per record id). Again with the indexer running through the kill.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from logpipe.common.broker import Keys, connect, replica_wait
from logpipe.indexer.stats import totals
from tests.integration.test_shipper_helpers import Agent, Writer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

LINES = 100_000


def _index(url: str, store: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", "index", "--redis", url, "--store", store,
                           "--workers", "2", *args], capture_output=True, text=True, timeout=timeout)


def _stored(db) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[0] for row in conn.execute("SELECT doc ->> '$.message' FROM events")]
    finally:
        conn.close()


def _ship_through_a_failover(tmp_path, group, during=None):
    """Write LINES lines, ship them with ``--once``, kill the primary once a third is shipped and the replica
    lags behind (paused); returns
    (written lines, agent output). ``during`` runs after the kill (e.g. to check the indexer)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    writer = Writer(logs / "app.log", "failover")
    writer.write(LINES)
    watch = connect(group.url())
    agent = Agent(tmp_path, group.url(), "--once", "--batch-lines", "500", str(logs / "*.log")).start()
    try:
        def pushed_a_third():
            try:  # on the list, or already claimed by a running indexer
                claimed = int(totals(watch, Keys()).get("claimed", 0))
                return watch.llen(Keys().raw) + claimed >= LINES // 3 or agent.proc.poll() is not None
            except Exception:  # noqa: BLE001
                return False
        wait_for(pushed_a_third, timeout=300, what="a third of the lines on the list", agent=agent)
        assert agent.proc.poll() is None, "the agent finished before the kill; the test proves nothing"
        # The replica stops taking the stream (SIGSTOP) while pushes still reach the primary: what the primary
        # holds then is exactly what a failover loses unless it was confirmed only after WAIT.
        replica = group.replicas[0]
        before = watch.llen(Keys().raw)
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: watch.llen(Keys().raw) != before or agent.proc.poll() is not None, timeout=120,
                     what="a push the replica has not got", agent=agent)
            time.sleep(0.5)  # a guard-free pause: more pushes may land on the primary alone
            old = group.kill_primary()
        finally:
            os.kill(replica.pid, signal.SIGCONT)
        new = group.wait_failover(old.port)
        if during:
            during(new)
        code = agent.proc.wait(600)
    finally:
        if agent.proc and agent.proc.poll() is None:
            agent.stop()
        watch.close()
    out = agent.output()
    assert code == 0, out[-3000:]
    return writer.written, out


def test_primary_killed_while_shipping_then_burst(tmp_path, sentinel_group):
    written, out = _ship_through_a_failover(tmp_path, sentinel_group)
    # the agent followed the failover (its broker outage is reported once, not per retry)
    assert out.count("event=broker_down") <= 1, out[-3000:]
    db = tmp_path / "events.db"
    run = _index(sentinel_group.url(), f"sqlite:///{db}", "--burst")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stored = _stored(db)
    assert len(stored) == LINES and set(stored) == set(written)
    client = connect(sentinel_group.url())
    assert client.llen(Keys().raw) == 0 and client.zcard(Keys().batches) == 0
    assert client.xlen(Keys().dlq) == 0
    client.close()


def test_primary_killed_while_shipping_and_indexing(tmp_path, sentinel_group):
    db = tmp_path / "events.db"
    indexer = subprocess.Popen([sys.executable, "-m", "logpipe.common.cli", "index", "--redis", sentinel_group.url(),
                                "--store", f"sqlite:///{db}", "--workers", "2", "--batch-size", "2000"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(indexer.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("event=index_started" in line for line in output) or indexer.poll() is not None,
                 timeout=120, what="the indexer to start")

        def indexing(_new_primary):
            if indexer.poll() is not None:
                reader.join(10)
                pytest.fail("the indexer exited at the failover:\n" + "".join(output)[-3000:])
        written, _ = _ship_through_a_failover(tmp_path, sentinel_group, during=indexing)
        client = connect(sentinel_group.url())

        def drained():
            if indexer.poll() is not None:
                reader.join(10)
                pytest.fail(f"the indexer exited with {indexer.returncode}:\n" + "".join(output)[-5000:])
            try:
                return client.llen(Keys().raw) == 0 and client.zcard(Keys().batches) == 0
            except Exception:  # noqa: BLE001
                return False
        wait_for(drained, timeout=600, what="the indexer to drain the new primary")
    finally:
        indexer.terminate()
        indexer.wait(120)
        reader.join(10)
    out = "".join(output)
    stored = _stored(db)
    assert len(stored) == LINES and set(stored) == set(written), out[-3000:]
    assert client.xlen(Keys().dlq) == 0
    client.close()


def test_sentinel_url_follows_a_failover_with_one_log_line(sentinel_group, caplog):
    client = connect(sentinel_group.url())
    with caplog.at_level(logging.WARNING, logger="logpipe.broker"):
        client.rpush("k", "before")
        assert replica_wait(client).needed(client) == 1  # one replica connected: pushes wait for it
        old = sentinel_group.kill_primary()
        new = sentinel_group.wait_failover(old.port)
        deadline = time.monotonic() + 60
        while True:
            try:
                got = client.lrange("k", 0, -1)
                break
            except Exception:  # noqa: BLE001 - the old primary until the client asks the sentinels again
                assert time.monotonic() < deadline
                time.sleep(0.2)
    assert got == [b"before"]
    lines = [r.getMessage() for r in caplog.records if r.name == "logpipe.broker"]
    assert sum("failover" in line for line in lines) == 1, lines
    assert f":{new.port}" in lines[-1] and str(sentinel_group.password) not in "\n".join(lines)


def test_sentinel_url_parsing_errors_are_clear():
    from logpipe.common.errors import BrokerError

    for bad in ("redis+sentinel://h:1/", "redis+sentinel://h:1/svc/0/x", "redis+sentinel://h:x/svc"):
        with pytest.raises(BrokerError, match="invalid broker URL"):
            connect(bad)
    client = connect("redis+sentinel://u:p%40ss@h1:26379,h2:26380/svc/3?wait_replicas=2&wait_timeout_ms=100")
    assert replica_wait(client).replicas == 2 and replica_wait(client).timeout_ms == 100
    pool = client.connection_pool
    assert pool.service_name == "svc" and pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["password"] == "p@ss" and pool.connection_kwargs["username"] == "u"
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in pool.sentinel_manager.sentinels] == [("h1", 26379), ("h2", 26380)]


def test_least_privilege_shipper_user_still_waits_for_a_replica(sentinel_group):
    """The `logpipe acl setup` shipper user on a replicated primary: its pushes are confirmed by WAIT (it may run
    INFO and WAIT), and it still cannot read what it pushed."""
    import redis

    from logpipe.common.broker.acl import setup_users

    primary = sentinel_group.primary
    admin = connect(primary.url)
    urls = setup_users(admin, primary.url, roles=("shipper",))
    shipper = connect(urls["shipper"])
    assert replica_wait(shipper).needed(shipper) == 1
    pipe = shipper.pipeline(transaction=False)
    pipe.rpush(Keys().raw, b"line")
    assert replica_wait(shipper).confirm(shipper, pipe) == [1]
    with pytest.raises(redis.exceptions.NoPermissionError):
        shipper.lrange(Keys().raw, 0, -1)
    admin.close()
    shipper.close()
