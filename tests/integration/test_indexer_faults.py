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

from common.broker import Keys, connect
from indexer.dlq import DeadLetterQueue
from services.elasticsearch import ElasticsearchNode
from tests.support.mail import mail_records

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def start_indexer(redis_url: str, store_url: str, workers: int = 2, batch: int = 200):
    return subprocess.Popen([sys.executable, "-m", "common.cli", "index", "--redis", redis_url,
                             "--store", store_url, "--workers", str(workers), "--batch-size",
                             str(batch)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_drained(client, timeout: float = 240) -> None:
    keys = Keys()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.llen(keys.raw) == 0 and client.zcard(keys.batches) == 0:
                return
        except Exception:
            pass
        time.sleep(0.25)
    raise AssertionError("the pipeline did not drain")


def stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


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


def test_worker_killed_mid_batch(redis_url, es_url, es_client):
    from rq import Queue, Worker
    from rq.registry import StartedJobRegistry

    client = connect(redis_url)
    items, bad = mail_records(3000)
    client.rpush(Keys().raw, *items)
    proc = start_indexer(redis_url, es_url)
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
    proc = start_indexer(redis_url, url)
    try:
        time.sleep(3)
        node.stop()  # the engine goes away while records keep coming (data dir kept)
        client.rpush(Keys().raw, *items[1000:])
        time.sleep(5)
        assert client.zcard(Keys().batches) + client.llen(Keys().raw) > 0
        node.start()
        wait_drained(client)
        stop(proc)
        assert_exactly_once(es, client, items, bad)
    finally:
        if proc.poll() is None:
            proc.kill()
        node.stop()


def test_broker_restarted_with_aof(own_valkey, es_url, es_client):
    client = connect(own_valkey.url)
    items, bad = mail_records(3000)
    client.rpush(Keys().raw, *items[:1500])
    proc = start_indexer(own_valkey.url, es_url)
    try:
        time.sleep(2)
        own_valkey.stop()        # clean shutdown: the append-only file has everything
        time.sleep(2)
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
