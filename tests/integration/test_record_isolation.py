"""Issue 9, item 2: one bad record never holds up its batch. A batch mixing good records with
malformed items (and an event the store cannot serialise) is processed in one pass against real
Valkey and each real store: every good record stored by a single write, exactly the bad ones
dead-lettered with their stage and reason, the batch forgotten."""

from __future__ import annotations

import pytest

from logpipe.common.broker import Broker, Keys
from logpipe.common.record import Record, encode, record_id
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.indexer.jobs import BatchProcessor, JobSettings
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import FieldEdits, PipelineConfig, TypeConfig
from logpipe.store import open_store
from logpipe.store.base import SearchRequest
from tests.support.stores import search as store_search

pytestmark = pytest.mark.integration

# (raw item, the stage it must be dead-lettered at)
MALFORMED = [
    (b'{"line": "x", "id": "p1", "received_at": "notanumber"}', "decode"),
    (b'{"line": "x", "id": "p2", "tags": "notalist"}', "decode"),
    (b'{"line": "x", "id": "p3", "offset": {"a": 1}}', "decode"),
    (b"null", "decode"),
    (b"[1, 2]", "decode"),
]
# converted to an integer no store can hold (orjson refuses integers beyond 64 bits)
UNSERIALISABLE = Record(id="big-1", line="huge counter", host="h", path="/m", type="metric",
                        fields={"counter": "9" * 30}, received_at=1764324000.0)


class CountingSink:
    """The real store, with its write calls counted (one pass = one call)."""

    def __init__(self, sink):
        self.sink, self.writes = sink, 0

    def prepare(self):
        self.sink.prepare()

    def write(self, events):
        self.writes += 1
        return self.sink.write(events)

    def write_messages(self, grouped):
        return self.sink.write_messages(grouped)


def pipeline() -> Pipeline:
    return Pipeline(PipelineConfig(types={
        "plain": TypeConfig("plain"),
        "metric": TypeConfig("metric", fields=FieldEdits(convert={"counter": "int"})),
    }, default_type="plain"))


def good_records(n: int) -> list[Record]:
    return [Record(id=record_id("h", "f", i), line=f"good line {i}", host="h", path="/f",
                   offset=i, type="plain", received_at=1764324000.0 + i) for i in range(n)]


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store(request, tmp_path):
    if request.param == "sqlite":
        sink = open_store(f"sqlite:///{tmp_path}/events.db")
    else:
        request.getfixturevalue("es_client")  # cleans logpipe-* before and after
        sink = open_store(request.getfixturevalue("es_url") + "/?index=logpipe-iso-%Y.%m.%d")
    yield sink
    sink.close()


def test_malformed_items_are_dead_lettered_and_the_rest_stored_in_one_pass(redis_client, store):
    good = good_records(6)
    items = [encode(good[0])]
    for k, (raw, _stage) in enumerate(MALFORMED):
        items += [raw, encode(good[k + 1])]
    items.append(encode(UNSERIALISABLE))
    keys = Keys()
    redis_client.rpush(keys.raw, *items)
    key, n = Broker(redis_client, keys).claim_batch(10_000)
    assert n == len(items)
    sink = CountingSink(store)
    settings = JobSettings(redis_url="unused", store_url="unused", store_wait=60)

    result = BatchProcessor(redis_client, settings, sink, pipeline()).run(key)

    assert sink.writes == 1  # one pass: no retry, no split
    assert result.counts() == {"records": len(items), "indexed": 6, "duplicate": 0,
                               "dead_lettered": len(MALFORMED) + 1}
    assert not redis_client.exists(key) and redis_client.zcard(keys.batches) == 0
    letters = list(DeadLetterQueue(redis_client).iter())
    got = sorted((bytes(letter.record), letter.stage) for letter in letters)
    assert got == sorted(MALFORMED + [(encode(UNSERIALISABLE), "index")])
    for letter in letters:
        assert letter.reason.strip()
    big = next(letter for letter in letters if letter.stage == "index")
    assert big.record_id == "big-1" and "64-bit" in big.reason
    if hasattr(store, "refresh"):
        store.refresh()
    found = store_search(store, SearchRequest(query="message:good", limit=50))
    assert found.total == 6
    assert sorted(e["message"] for e in found.events) == sorted(r.line for r in good)


def test_the_indexer_stores_a_batch_with_malformed_items_without_a_retry(redis_url, tmp_path):
    """The same batch through ``logpipe index --burst`` (dispatcher, RQ worker): one job, never
    failed or retried, the good records stored, exactly the bad ones dead-lettered."""
    import subprocess
    import sys

    from logpipe.common.broker import connect
    from logpipe.indexer.stats import totals

    good = good_records(6)
    items = [encode(good[0])]
    for k, (raw, _stage) in enumerate(MALFORMED):
        items += [raw, encode(good[k + 1])]
    client = connect(redis_url)
    keys = Keys()
    client.rpush(keys.raw, *items)
    store_url = f"sqlite:///{tmp_path}/events.db"
    run = subprocess.run([sys.executable, "-m", "logpipe.common.cli", "index", "--redis", redis_url,
                          "--store", store_url, "--workers", "1", "--burst",
                          "--batch-size", "1000"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "batch_failed" not in run.stderr
    counters = totals(client, keys)
    assert (counters.get("indexed"), counters.get("dead_lettered")) == (6, len(MALFORMED))
    assert client.hlen(keys.batch_attempts) == 0  # the job never failed: no retry was due
    assert sorted(bytes(letter.record) for letter in DeadLetterQueue(client).iter()) == \
        sorted(raw for raw, _ in MALFORMED)
    store = open_store(store_url)
    try:
        assert store.count(SearchRequest(query="message:good")) == 6
    finally:
        store.close()
