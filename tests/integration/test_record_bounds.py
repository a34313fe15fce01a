"""Issue 21, item 6 (the indexer's side): bounds on what the indexer takes of one record, nothing
lost. logpipe's shipper cuts lines at 1 MiB; any other client may push a record of 100,000
fields or a line of megabytes. With the defaults ([limits]: 1 MiB line, 1,000 fields) such a
record is dead-lettered with the bound in its reason and its stage, or, with ``oversize =
"truncate"``, cut, tagged ``_truncated`` and stored; its neighbours in the batch are stored
either way. Real Valkey and the embedded store (one case on the real Elasticsearch node); the
dead letter of a 2 MB record is shown bounded by ``dlq show`` and the data the web page reads."""

from __future__ import annotations

import json

import orjson
import pytest

from logpipe.common.broker import Broker, Keys
from logpipe.common.errors import ConfigError
from logpipe.common.record import Record, encode, record_id
from logpipe.indexer.dlq import PREVIEW_BYTES, DeadLetterQueue
from logpipe.indexer.jobs import BatchProcessor, JobSettings
from logpipe.indexer.limits import TRUNCATED_TAG
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import Limits, load_pipeline, parse_pipeline
from logpipe.indexer.replay import replay
from logpipe.store import open_store
from logpipe.store.base import SearchRequest
from tests.support.mail import logpipe
from tests.support.stores import search as store_search

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
T0 = 1764324000.0
SETTINGS = JobSettings(redis_url="unused", store_url="unused", store_wait=30)


def record(n: int, line: str | None = None, fields: dict | None = None, **kw) -> Record:
    return Record(id=record_id("h", "/f", n), line=f"good line {n}" if line is None else line,
                  host="h", path="/f", offset=n, type="plain", fields=fields or {},
                  received_at=T0 + n, **kw)


def pipeline(limits: str = "") -> Pipeline:
    return Pipeline(parse_pipeline(f'default_type = "plain"\n[types.plain]\n{limits}'))


def run_batch(client, store, items: list[bytes], pipe: Pipeline):
    keys = Keys()
    client.rpush(keys.raw, *items)
    key, n = Broker(client, keys).claim_batch(10_000)
    assert n == len(items)
    result = BatchProcessor(client, SETTINGS, store, pipe).run(key)
    if hasattr(store, "refresh"):
        store.refresh()
    assert not client.exists(key)  # the batch is done with: every record judged
    return result, {letter.record_id: letter for letter in DeadLetterQueue(client).iter()}


def oversize_batch() -> tuple[list[bytes], dict]:
    """Good records between oversize ones; {record id: (stage, words of the reason)}."""
    wide = record(101, fields={f"f{i}": i for i in range(100_000)})
    long_line = record(102, line="x" * (2 * MIB))
    big_value = record(103, fields={"blob": "y" * (2 * MIB)})
    items = [encode(record(0)), encode(wide), encode(record(1)), encode(long_line),
             encode(record(2)), encode(big_value), encode(record(3)),
             b"z" * (2 * MIB), encode(record(4))]  # a plain text line of 2 MiB (rsyslog...)
    expect = {wide.id: ("parse", "max_fields"), long_line.id: ("decode", "max_line_bytes"),
              big_value.id: ("parse", "max_line_bytes")}
    return items, expect


@pytest.fixture
def sqlite_store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path}/events.db")
    yield store
    store.close()


def test_the_defaults_fit_real_logs():
    limits = load_pipeline().bounds
    assert limits == Limits(max_line_bytes=MIB, max_fields=1000, max_record_bytes=16 * MIB,
                            oversize="dead-letter")


@pytest.mark.parametrize("text,message", [
    ("[limits]\nmax_fields = 0", "max_fields must be a positive integer"),
    ("[limits]\nmax_line_bytes = '1M'", "max_line_bytes must be a positive integer"),
    ("[limits]\noversize = 'drop'", 'oversize must be "dead-letter" or "truncate"'),
    ("[limits]\nmax_bytes = 5", "unknown key 'max_bytes'"),
])
def test_a_wrong_limits_table_is_refused_naming_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_pipeline(text, "p.toml")


def test_oversize_records_are_dead_lettered_with_the_bound_and_their_neighbours_stored(
        redis_client, sqlite_store):
    items, expect = oversize_batch()
    result, letters = run_batch(redis_client, sqlite_store, items, pipeline())
    assert (result.indexed, result.dead_lettered) == (5, 4)
    good = store_search(sqlite_store, SearchRequest(query="message:good", limit=50)).events
    assert sorted(e["message"] for e in good) == [f"good line {n}" for n in range(5)]
    assert sqlite_store.count(SearchRequest(query="*")) == 5  # nothing else, nothing cut
    plain = [rid for rid in letters if rid not in expect]
    assert len(plain) == 1
    expect[plain[0]] = ("decode", "max_line_bytes")
    assert {rid: letter.stage for rid, letter in letters.items()} == \
        {rid: stage for rid, (stage, _) in expect.items()}
    for rid, (_, bound) in expect.items():
        assert bound in letters[rid].reason, letters[rid].reason
    assert "100,000 fields" in letters[record(101).id].reason \
        or "fields or more" in letters[record(101).id].reason
    # the dead letters hold the records whole: nothing is lost
    good_items = {encode(record(n)) for n in range(5)}
    assert sorted(bytes(letter.record) for letter in letters.values()) == \
        sorted(i for i in items if i not in good_items)


def test_the_dead_letter_of_a_2mb_record_is_shown_bounded(redis_client, redis_url, sqlite_store):
    items, _ = oversize_batch()
    run_batch(redis_client, sqlite_store, items, pipeline())
    dlq = DeadLetterQueue(redis_client)
    letter = next(lt for lt in dlq.iter() if lt.record_id == record(102).id)
    assert len(letter.record) > 2 * MIB
    data = letter.to_dict()  # what `dlq list --json` and the web page's dead letters show
    assert len(data["record"].encode()) <= PREVIEW_BYTES and data["record_cut"] is True
    assert data["record_bytes"] == len(letter.record)
    assert letter.record.startswith(data["record"].encode())
    whole = letter.to_dict(None)
    assert whole["record"].encode() == letter.record and whole["record_cut"] is False
    shown = logpipe("dlq", "show", letter.entry_id, "--redis", redis_url)
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout) < PREVIEW_BYTES + 2000
    assert json.loads(shown.stdout)["record_bytes"] == len(letter.record)
    full = logpipe("dlq", "show", letter.entry_id, "--redis", redis_url, "--full")
    assert json.loads(full.stdout)["record"].encode() == letter.record
    listed = logpipe("dlq", "list", "--redis", redis_url, "--json")
    # (a preview of JSON text is escaped once more in JSON: at most twice as long)
    assert max(len(line) for line in listed.stdout.splitlines()) < 2 * PREVIEW_BYTES + 2000


def test_a_preview_never_cuts_a_character(redis_client):
    dlq = DeadLetterQueue(redis_client)
    raw = ("é" * PREVIEW_BYTES).encode()  # two bytes each: the cut falls inside one or not
    for shift in (0, 1):
        dlq.add(b"a" * shift + raw, f"r{shift}", "decode", "test")
    for letter in dlq.iter():
        text, cut = letter.preview()
        assert cut and "\ufffd" not in text and len(text.encode()) <= PREVIEW_BYTES
        assert letter.record.startswith(text.encode())


TRUNCATE = """[limits]
max_line_bytes = 1000
max_fields = 50
max_record_bytes = 20000
oversize = "truncate"
"""


def test_truncate_cuts_tags_and_stores_them_with_their_neighbours(redis_client, sqlite_store):
    long_line = record(201, line="é" * 700)  # 1,400 bytes: cut at 1,000, between characters
    wide = record(202, fields={f"f{i:03}": i for i in range(200)})
    nested = record(203, fields={"a": 1, "deep": {f"k{i}": i for i in range(100)}})
    heavy = record(204, fields={f"v{i}": "w" * 900 for i in range(40)})  # ~37 KB: over 20,000
    items = [encode(record(0)), encode(long_line), encode(wide), encode(record(1)),
             encode(nested), encode(heavy), encode(record(2))]
    result, letters = run_batch(redis_client, sqlite_store, items, pipeline(TRUNCATE))
    assert (result.indexed, result.dead_lettered, letters) == (7, 0, {})
    cut = {e["_id"]: e for e in store_search(sqlite_store,
        SearchRequest(query=f"tags:{TRUNCATED_TAG}", limit=50)).events}
    assert sorted(cut) == sorted(r.id for r in (long_line, wide, nested, heavy))
    assert sqlite_store.count(SearchRequest(query=f"message:good -tags:{TRUNCATED_TAG}")) == 3
    msg = cut[long_line.id]["message"]
    assert msg == "é" * 500 and len(msg.encode()) == 1000
    kept = [k for k in cut[wide.id] if k.startswith("f")]
    assert kept == [f"f{i:03}" for i in range(len(kept))] and len(kept) <= 50 - 8
    assert len(cut[wide.id]) - 1 <= 50  # (the event's own fields included; _id is the store's)
    assert "deep" not in cut[nested.id] and cut[nested.id]["a"] == 1
    heavy_doc = {k: v for k, v in cut[heavy.id].items() if k != "_id"}
    assert len(orjson.dumps(heavy_doc)) <= 20000
    assert "v0" in heavy_doc and "v39" not in heavy_doc  # the last ones went
    assert heavy_doc["host"] == "h" and heavy_doc["message"] == "good line 204"


def test_an_item_over_max_record_bytes_is_not_read_and_replay_keeps_the_bounds(
        redis_client, sqlite_store):
    limits = "[limits]\nmax_record_bytes = 5000\n"
    big = record(301, fields={f"v{i}": "w" * 900 for i in range(10)})
    items = [encode(record(0)), encode(big), encode(record(1))]
    result, letters = run_batch(redis_client, sqlite_store, items, pipeline(limits))
    assert (result.indexed, result.dead_lettered) == (2, 1)
    # not decoded: it is dead-lettered under its position in the batch, with the bound
    [letter] = letters.values()
    assert letter.stage == "decode" and "max_record_bytes" in letter.reason
    assert bytes(letter.record) == encode(big)
    dlq = DeadLetterQueue(redis_client)
    assert replay(dlq, pipeline(limits), sqlite_store)["still_failing"] == 1  # same bounds
    assert replay(dlq, pipeline(), sqlite_store)["indexed"] == 1  # a raised bound takes it
    assert len(dlq) == 0
    [event] = store_search(sqlite_store, SearchRequest(query=f'_id:"{big.id}"', limit=1)).events
    assert event["v9"] == "w" * 900 and TRUNCATED_TAG not in event["tags"]


def test_oversize_records_on_elasticsearch(redis_client, es_url, es_client):
    store = open_store(es_url + "/?index=logpipe-bounds-%Y.%m.%d")
    try:
        items, expect = oversize_batch()
        result, letters = run_batch(redis_client, store, items, pipeline())
        assert (result.indexed, result.dead_lettered) == (5, 4)
        assert store.count(SearchRequest(query="*")) == 5
        for rid, (stage, bound) in expect.items():
            assert letters[rid].stage == stage and bound in letters[rid].reason
    finally:
        store.close()
