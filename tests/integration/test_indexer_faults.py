"""Fault tests for the indexer against the real broker and the real Elasticsearch node.

Each one ends with: documents = lines shipped (minus the unindexable ones), no duplicates, and
the dead-letter queue holding exactly the records Elasticsearch refuses (a field nested deeper than
its depth limit: a permanent, per-item mapping failure).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from logpipe.common.broker import Keys, connect
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.services.elasticsearch import ElasticsearchNode
from tests.support.mail import mail_records

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Indexer:
    """``logpipe index`` in a subprocess, its output in a file the test can watch."""

    def __init__(self, log_path):
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def poll(self):
        return self.proc.poll()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def start_indexer(redis_url: str, store_url: str, log_path, workers: int = 2,
                  batch: int = 200) -> Indexer:
    indexer = Indexer(log_path)
    with open(log_path, "wb") as out:
        indexer.proc = subprocess.Popen(
            [sys.executable, "-m", "logpipe.common.cli", "index", "--redis", redis_url, "--store",
             store_url, "--workers", str(workers), "--batch-size", str(batch)],
            stdout=out, stderr=subprocess.STDOUT)
    return indexer


def wait_until(predicate, what: str, indexer: Indexer | None = None, timeout: float = 240):
    """Poll a real signal (a log line, a counter); the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # the broker may be restarting under the predicate
            pass
        if indexer is not None and indexer.poll() is not None:
            raise AssertionError(f"the indexer exited while waiting for {what}:\n"
                                 f"{indexer.output()[-4000:]}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" +
                         (f"\n{indexer.output()[-4000:]}" if indexer else ""))


def wait_drained(client, timeout: float = 240) -> None:
    keys = Keys()
    wait_until(lambda: client.llen(keys.raw) == 0 and client.zcard(keys.batches) == 0,
               "the pipeline to drain", timeout=timeout)


def counter(client, name: str) -> int:
    return int(client.hget(Keys().stats("counters"), name) or 0)


def stop(indexer: Indexer) -> str:
    proc = indexer.proc
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return indexer.output()


def assert_exactly_once(es, client, items, bad_ids):
    es.indices.refresh(index="logstash-*")
    total = es.count(index="logstash-*")["count"]
    assert total == len(items) - len(bad_ids)
    # _id is the record id: count of distinct ids equals count of docs, so no duplicates.
    ids = {h["_id"] for h in es.search(index="logstash-*", size=10_000, _source=False,
                                       query={"match_all": {}})["hits"]["hits"]}
    assert len(ids) == total
    assert not ids & bad_ids
    letters = list(DeadLetterQueue(client).iter())
    assert {l.record_id for l in letters} == bad_ids
    assert len(letters) == len(bad_ids)
    assert all(l.stage == "index" and "depth" in l.reason for l in letters)


def test_worker_killed_mid_batch(redis_url, es_url, es_client, tmp_path):
    from rq import Queue, Worker
    from rq.registry import StartedJobRegistry

    client = connect(redis_url)
    items, bad = mail_records(3000)
    client.rpush(Keys().raw, *items)
    proc = start_indexer(redis_url, es_url, tmp_path / "index.log")
    killed = None
    deadline = time.monotonic() + 120
    queue = Queue("logpipe", connection=client)
    while killed is None and time.monotonic() < deadline:
        for job_id in StartedJobRegistry(queue=queue).get_job_ids():
            job = queue.fetch_job(job_id)
            worker = job and job.worker_name and Worker.find_by_key(
                Worker.redis_worker_namespace_prefix + job.worker_name, connection=client)
            if worker and worker.pid:
                os.kill(worker.pid, signal.SIGKILL)
                killed = worker.pid
                break
        time.sleep(0.005)
    assert killed, "no job was seen running"
    wait_drained(client)
    out = stop(proc)
    assert "worker_died" in out
    assert_exactly_once(es_client, client, items, bad)


def test_engine_stopped_during_ingest(redis_url, tmp_path):
    from elasticsearch import Elasticsearch

    node = ElasticsearchNode(data_dir=tmp_path / "es")
    url = node.start()
    es = Elasticsearch(url)
    client = connect(redis_url)
    items, bad = mail_records(2500)
    client.rpush(Keys().raw, *items[:1000])
    proc = start_indexer(redis_url, url, tmp_path / "index.log")
    try:
        # ready signal: the workers are storing records
        wait_until(lambda: counter(client, "indexed") > 0, "the first stored records", proc)
        node.stop()  # the engine goes away while records keep coming (data dir kept)
        claimed = counter(client, "claimed")
        client.rpush(Keys().raw, *items[1000:])
        # the indexer takes new records while the engine is down: they wait in batches
        wait_until(lambda: counter(client, "claimed") > claimed, "a batch claimed during the "
                   "outage", proc)
        assert client.zcard(Keys().batches) > 0
        node.start()
        wait_drained(client)
        stop(proc)
        assert_exactly_once(es, client, items, bad)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.stop()


def test_broker_restarted_with_aof(own_valkey, es_url, es_client, tmp_path):
    client = connect(own_valkey.url)
    items, bad = mail_records(3000)
    client.rpush(Keys().raw, *items[:1500])
    proc = start_indexer(own_valkey.url, es_url, tmp_path / "index.log")
    try:
        # ready signals: the indexer started and its workers store records; stopping the
        # broker before that tested the indexer's start-up, not a restart
        wait_until(lambda: "index_started" in proc.output(), "index_started", proc)
        wait_until(lambda: counter(client, "indexed") > 0, "the first stored records", proc)
        own_valkey.stop()        # clean shutdown: the append-only file has everything
        wait_until(lambda: "broker_unreachable" in proc.output(), "broker_unreachable", proc)
        own_valkey.start()
        client = connect(own_valkey.url)
        client.rpush(Keys().raw, *items[1500:])
        wait_drained(client)
        out = stop(proc)
        assert "broker_unreachable" in out and "broker_back" in out
        assert_exactly_once(es_client, client, items, bad)
    finally:
        if proc.poll() is None:
            proc.kill()
