"""The loss ledger on a real Valkey: the merge is idempotent and order-free, and records deleted on
purpose from the raw list before indexing are reported as exactly the deleted ranges, then cleared
when they are delivered late."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from rq import Queue

from logpipe.common.broker import Keys, connect
from logpipe.common.record import Record
from logpipe.indexer import ledger
from logpipe.indexer.dispatch import Dispatcher
from logpipe.indexer.worker import worker_class
from logpipe.indexer.jobs import JobSettings
from tests.integration.test_shipper_helpers import ship_cmd

LOGPIPE = str(Path(sys.executable).parent / "logpipe")  # the venv's command

pytestmark = pytest.mark.integration


def _recs(src: str, seqs, received: float = 1000.0) -> list[Record]:
    return [Record(id=f"{src}-{s:x}", line="x", host="h1", path="/var/log/a", seq=s,
                   received_at=received) for s in seqs]


def test_merge_is_idempotent_order_free_and_ages_holes(redis_client):
    keys = Keys()
    # out of order, twice, overlapping
    ledger.note(redis_client, keys, _recs("s1", range(6, 10)), now=100.0)
    ledger.note(redis_client, keys, _recs("s1", range(0, 3)), now=100.0)
    ledger.note(redis_client, keys, _recs("s1", range(0, 3)), now=150.0)
    (e,) = ledger.report(redis_client, keys, loss_after=300, now=160.0)
    assert (e["stored_upto"], e["gaps"], e["records"]) == (2, 3, 7)
    assert e["holes"] == [[3, 5, 60.0]] and e["lost"] == []
    # a record in the middle splits the hole; both pieces keep the time it was first seen
    ledger.note(redis_client, keys, _recs("s1", [4]), now=200.0)
    (e,) = ledger.report(redis_client, keys, loss_after=300, now=450.0)
    assert [h[:2] for h in e["holes"]] == [[3, 3], [5, 5]]
    assert e["lost"] == [[3, 3], [5, 5]] and e["lost_records"] == 2
    assert "LOST 3, 5" in ledger.summary_line(e)
    # the late records close it: cleared
    ledger.note(redis_client, keys, _recs("s1", [3, 5, 9]), now=500.0)
    (e,) = ledger.report(redis_client, keys, loss_after=0, now=501.0)
    assert (e["stored_upto"], e["gaps"], e["lost"], e["records"]) == (9, 0, [], 10)
    # records without a sequence (other shippers) are not in the ledger
    ledger.note(redis_client, keys, [Record(id="plain", line="x")], now=1.0)
    assert [x["source"] for x in ledger.report(redis_client, keys)] == ["s1"]


def _index(redis_url: str, store: str, raw: str) -> None:
    client = connect(redis_url)
    dispatcher = Dispatcher(client, JobSettings(redis_url=redis_url, store_url=store, raw=raw),
                            batch_size=150, max_queued_jobs=1000)
    while dispatcher.dispatch_once():
        pass
    # the indexer's own worker class: RQ's SimpleWorker may linger 60 s at teardown (issue 27)
    worker_class()([Queue("logpipe", connection=client)], connection=client).work(burst=True)
    assert dispatcher.idle()


def _stats(redis_url: str, raw: str, home) -> dict:
    env = {**os.environ, "LOGPIPE_HOME": str(home), "LOGPIPE_REDIS_URL": redis_url}
    r = subprocess.run([LOGPIPE, "stats", "--json", "--list", raw, "--loss-after", "0"],
                       capture_output=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_deleted_records_are_reported_as_exactly_their_ranges(tmp_path, redis_url, redis_client):
    raw = "ledger:raw"
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "home"), "LOGPIPE_REDIS_URL": redis_url}
    r = subprocess.run(ship_cmd("--once", "--list", raw, str(log)), capture_output=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    items = redis_client.lrange(raw, 0, -1)
    assert [orjson.loads(x)["seq"] for x in items] == list(range(1000))
    deleted = [(100, 149), (700, 700), (998, 998)]
    held = [items[s] for a, b in deleted for s in range(a, b + 1)]
    for item in held:
        assert redis_client.lrem(raw, 1, item) == 1
    store = f"sqlite:///{tmp_path}/events.db"
    _index(redis_url, store, raw)
    figures = _stats(redis_url, raw, tmp_path / "home")
    (e,) = figures["ledger"]
    print("ledger after deleting", deleted, ":", ledger.summary_line(e))
    assert e["path"] == str(log) and e["stored_upto"] == 99
    assert e["lost"] == [[100, 149], [700, 700], [998, 998]]
    assert e["gaps"] == e["lost_records"] == 52 and e["records"] == 948
    # delivered late (a shipper resending, a batch retried): the holes close
    redis_client.rpush(raw, *held)
    _index(redis_url, store, raw)
    (e,) = _stats(redis_url, raw, tmp_path / "home")["ledger"]
    print("ledger after the late delivery:", ledger.summary_line(e))
    assert (e["stored_upto"], e["gaps"], e["lost"], e["records"]) == (999, 0, [], 1000)


def test_a_restarted_shipper_repeats_the_same_sequences(tmp_path, redis_url, redis_client):
    """The sequence is kept with the offset: a second run continues it, a lost registry offsets
    file (the offsets kept in the registry file) repeats it."""
    raw = "ledger2:raw"
    log = tmp_path / "app.log"
    log.write_text("".join(f"a {i}\n" for i in range(10)) + "\n\n")
    env = {**os.environ, "LOGPIPE_HOME": str(tmp_path / "home"), "LOGPIPE_REDIS_URL": redis_url}
    args = ship_cmd("--once", "--list", raw, str(log))
    assert subprocess.run(args, capture_output=True, env=env, timeout=120).returncode == 0
    with open(log, "a") as f:
        f.write("".join(f"b {i}\n" for i in range(5)))
    assert subprocess.run(args, capture_output=True, env=env, timeout=120).returncode == 0
    seqs = [orjson.loads(x)["seq"] for x in redis_client.lrange(raw, 0, -1)]
    assert seqs == list(range(15))  # empty lines are no records: no hole for them
