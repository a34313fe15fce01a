"""Dispatcher and janitor with real RQ workers on a real Valkey: nothing claimed is ever lost."""

from __future__ import annotations

import time

import orjson
import pytest
from rq import Queue

from logpipe.common.broker import Broker, Keys, connect
from logpipe.common.record import Record, encode, record_id
from logpipe.indexer.dispatch import Dispatcher
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.indexer.worker import worker_class
from logpipe.indexer.jobs import JobSettings
from tests.support.stores import search as store_search

pytestmark = pytest.mark.integration


def records(n: int) -> list[bytes]:
    return [encode(Record(id=record_id("h", "f", i), line=f"Nov 28 10:00:00 h app[1]: {i}",
                          type="syslog", received_at=time.time())) for i in range(n)]


def work(redis_url: str) -> None:
    client = connect(redis_url)
    # the indexer's own worker class: RQ's SimpleWorker may linger 60 s at teardown (issue 27)
    worker_class()([Queue("logpipe", connection=client)], connection=client).work(burst=True)


def test_batches_become_jobs_and_documents(redis_url, tmp_path):
    client = connect(redis_url)
    client.rpush(Keys().raw, *records(250))
    store = f"sqlite:///{tmp_path}/events.db"
    dispatcher = Dispatcher(client, JobSettings(redis_url=redis_url, store_url=store),
                            batch_size=100, max_queued_jobs=10)
    assert dispatcher.dispatch_once() == 250
    assert Queue("logpipe", connection=client).count == 3
    work(redis_url)
    assert dispatcher.idle()
    from logpipe.store import open_store
    from logpipe.store.base import SearchRequest
    assert store_search(open_store(store), SearchRequest(limit=1)).total == 250


def test_janitor_enqueues_a_batch_whose_job_never_was(redis_url, tmp_path):
    """The dispatcher died between the claim and the enqueue: the batch is found and indexed."""
    client = connect(redis_url)
    client.rpush(Keys().raw, *records(40))
    key, n = Broker(client).claim_batch(100)
    dispatcher = Dispatcher(client, JobSettings(redis_url=redis_url,
                                                store_url=f"sqlite:///{tmp_path}/e.db"), grace=0)
    assert dispatcher.janitor()["requeued"] == 1
    work(redis_url)
    assert dispatcher.idle() and not client.exists(key)


def test_failing_batch_is_retried_then_dead_lettered(redis_url, tmp_path):
    client = connect(redis_url)
    items = records(30)
    client.rpush(Keys().raw, *items)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    settings = JobSettings(redis_url=redis_url, store_url=f"sqlite:///{blocked}/events.db")
    dispatcher = Dispatcher(client, settings, max_attempts=2, grace=0)
    dispatcher.dispatch_once()
    outcomes = []
    deadline = time.monotonic() + 60
    while not dispatcher.idle() and time.monotonic() < deadline:
        work(redis_url)
        outcomes.append(dispatcher.janitor())
        time.sleep(0.5)
    assert dispatcher.idle()
    assert sum(o["requeued"] for o in outcomes) == 2
    assert sum(o["dead_lettered_batches"] for o in outcomes) == 1
    letters = list(DeadLetterQueue(client).iter())
    assert sorted(l.record_id for l in letters) == sorted(orjson.loads(i)["id"] for i in items)
    assert all(l.stage == "index" and "gave up after 2 attempts" in l.reason for l in letters)
    assert all("not-a-dir" in l.reason for l in letters), letters[0].reason


def test_a_burst_into_the_embedded_store_ends_fully_searchable(redis_url, tmp_path):
    """Writes defer the full-text index; an idle indexer (here: the end of a burst) catches up."""
    import sqlite3

    from logpipe.store.sqlite.schema import MARK_SQL as _MARK_SQL
    from tests.support.mail import logpipe

    client = connect(redis_url)
    client.rpush(Keys().raw, *records(12_000))
    db = tmp_path / "events.db"
    run = logpipe("index", "--redis", redis_url, "--store", f"sqlite:///{db}", "--workers", "2",
                  "--burst", "--batch-size", "3000")
    assert run.returncode == 0, run.stderr
    conn = sqlite3.connect(db)
    top = conn.execute("SELECT MAX(rowid), COUNT(*) FROM events").fetchone()
    assert top[1] == 12_000
    assert conn.execute(_MARK_SQL).fetchone()[0] == top[0]


def test_records_stay_on_the_raw_list_while_batches_pile_up(redis_url, tmp_path):
    """No worker runs (as when every job fails): claiming stops at a bound, so the raw list
    keeps growing and the shippers' backpressure can see it."""
    client = connect(redis_url)
    client.rpush(Keys().raw, *records(1000))
    dispatcher = Dispatcher(client, JobSettings(redis_url=redis_url,
                                                store_url=f"sqlite:///{tmp_path}/e.db"),
                            batch_size=50, max_queued_jobs=4)
    assert dispatcher.dispatch_once() == 200          # the queue is full
    Queue("logpipe", connection=client).empty()        # the jobs "failed" and left the queue
    assert dispatcher.dispatch_once() == 200          # 8 batches in flight now
    Queue("logpipe", connection=client).empty()
    assert dispatcher.dispatch_once() == 0
    assert client.llen(Keys().raw) == 600


def test_a_store_outage_crosses_rq_as_a_type_and_spends_no_attempts(redis_url):
    """The job says *why* it failed (FailureKind in its meta, not a word in an error text): a
    store that is down is retried later without using up the batch's attempts."""
    import socket

    from rq.job import Job

    from logpipe.indexer.dispatch import job_id_for
    from logpipe.indexer.results import FailureKind

    with socket.socket() as s:  # a port nothing listens on: the store is down
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = connect(redis_url)
    client.rpush(Keys().raw, *records(10))
    settings = JobSettings(redis_url=redis_url, store_url=down, store_wait=0.5)
    dispatcher = Dispatcher(client, settings, max_attempts=1, grace=0)
    assert dispatcher.dispatch_once() == 10
    work(redis_url)
    (batch_key,) = [k.decode() for k in client.zrange(Keys().batches, 0, -1)]
    job = Job.fetch(job_id_for(batch_key), connection=client)
    assert FailureKind.of_job(job) is FailureKind.STORE_UNAVAILABLE
    before = time.time()
    assert dispatcher.janitor() == {"requeued": 1, "dead_lettered_batches": 0}
    assert int(client.hget(Keys().batch_attempts, batch_key) or 0) == 0
    assert float(client.hget(Keys().batch_due, batch_key)) >= before + 29
    assert client.llen(batch_key) == 10 and not list(DeadLetterQueue(client).iter())
