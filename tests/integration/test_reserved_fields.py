"""Issue 21, item 2: what is shown is what was stored. A field a record (or a filter) sets under a
name the stores keep for themselves (store.fields.RESERVED_FIELDS: ``_malformed_source``,
``_malformed``, ``_id``, ``_logpipe_id``, Elasticsearch's metadata fields) is stored as
``input<name>``: on both stores, search returns exactly the event the pipeline indexed, and the
record's own host and time are the ones shown and found. A record whose renamed name is taken
too is dead-lettered with the reason; its neighbours are stored."""

from __future__ import annotations

import pytest

from logpipe.common.broker import Broker, Keys, connect
from logpipe.common.record import Record, encode, record_id
from logpipe.indexer.dlq import DeadLetterQueue
from logpipe.indexer.jobs import BatchProcessor, JobSettings
from logpipe.indexer.pipeline import Pipeline
from logpipe.indexer.pipeline_config import parse_pipeline
from logpipe.store import open_store
from logpipe.store.base import SearchRequest
from logpipe.store.fields import (HIDDEN_MALFORMED, MALFORMED_FIELD, MALFORMED_TAG,
                                  RESERVED_FIELDS, RESERVED_RENAMED)
from tests.fixtures.elasticsearch import cleaned_es
from tests.support.stores import search as store_search

pytestmark = pytest.mark.integration

NAMES = sorted(RESERVED_FIELDS)
CONFIG = parse_pipeline("""
default_type = "plain"
[types.plain]
[types.app]
[[types.app.filter]]
json = { source = "message" }
""")
T0 = 1764324000.0
# what a forger would put there: another host and time (the embedded store used to merge it
# into the document it returned)
FORGED_SOURCE = {"host": "mail1", "message": "forged", "@timestamp": "2020-01-01T00:00:00Z"}


def forged(name: str):
    if name == HIDDEN_MALFORMED:
        return FORGED_SOURCE
    if name == MALFORMED_FIELD:
        return ["host", "message"]
    return f"forged{name}"


def records() -> list[Record]:
    out = []
    for k, name in enumerate(NAMES):
        fields = {name: forged(name), "n": k}
        if name == MALFORMED_FIELD:
            fields["relayip"] = "123.456.789.1"  # a malformed value of its own as well
        out.append(Record(id=record_id("web7", "/app", k), line=f"reserved {name}", host="web7",
                          path="/app", offset=k, type="plain", fields=fields,
                          received_at=T0 + k))
    # a JSON log line through a json filter (root target) sets them too
    out.append(Record(id="json-line", host="web7", path="/json", type="app",
                      line='{"_malformed_source": {"host": "mail1"}, "_id": "x1", "lvl": "e"}',
                      received_at=T0 + 100))
    # renaming would overwrite a field the record has: refused, with the reason
    out.append(Record(id="taken", line="taken", host="web7", path="/t", type="plain",
                      fields={"_id": "a", "input_id": "b"}, received_at=T0 + 200))
    return out


@pytest.fixture(scope="module", params=["sqlite", "elasticsearch"])
def indexed(request, valkey_server, tmp_path_factory):
    """The records through a real batch job into the store: (store, {record id: event doc the
    pipeline made}, dead letters)."""
    client = connect(valkey_server.url)
    client.flushall()
    keys = Keys()
    client.rpush(keys.raw, *[encode(r) for r in records()])
    key, _ = Broker(client, keys).claim_batch(1000)
    expected = {}
    pipeline = Pipeline(CONFIG)
    for record in records():
        if record.id != "taken":
            expected[record.id] = pipeline.process(Record(**{
                s: getattr(record, s) for s in Record.__slots__})).doc
    settings = JobSettings(redis_url="unused", store_url="unused", store_wait=30)
    if request.param == "sqlite":
        store = open_store(f"sqlite:///{tmp_path_factory.mktemp('reserved')}/events.db")
        BatchProcessor(client, settings, store, Pipeline(CONFIG)).run(key)
        yield store, expected, list(DeadLetterQueue(client).iter())
        store.close()
    else:
        es_url = request.getfixturevalue("es_url")
        with cleaned_es(es_url):
            store = open_store(es_url + "/?index=logpipe-reserved-%Y.%m.%d")
            BatchProcessor(client, settings, store, Pipeline(CONFIG)).run(key)
            store.refresh()
            yield store, expected, list(DeadLetterQueue(client).iter())
            store.close()
    client.close()


def shown(store, query: str) -> list[dict]:
    return store_search(store, SearchRequest(query=query, limit=50)).events


@pytest.mark.parametrize("name", NAMES)
def test_a_reserved_name_is_stored_renamed_and_shown_as_stored(indexed, name):
    store, expected, _ = indexed
    rid = record_id("web7", "/app", NAMES.index(name))
    [event] = shown(store, f'_id:"{rid}"')
    want = dict(expected[rid], _id=rid)
    if name == MALFORMED_FIELD:  # the store's own marking of the malformed relayip
        want[MALFORMED_FIELD] = ["relayip"]
        want["tags"] = [MALFORMED_TAG]
    assert event == want  # what search shows is what was indexed
    assert event["host"] == "web7" and event["@timestamp"].startswith("2025-11-28")
    assert event[RESERVED_RENAMED + name] == forged(name)
    if name not in ("_id", MALFORMED_FIELD):  # (those two: the store's own, asserted above)
        assert name not in event
    assert event["_id"] == rid and store.get_event(rid) == event
    if isinstance(forged(name), str):  # found by its stored name
        assert [e["_id"] for e in shown(store, f'{RESERVED_RENAMED}{name}:"{forged(name)}"')] \
            == [rid]


def test_a_forged_malformed_source_neither_shows_nor_finds_another_host(indexed):
    store, _, _ = indexed
    assert shown(store, "host:mail1") == []
    assert shown(store, 'message:"forged"') == []
    assert len(shown(store, "host:web7")) == len(NAMES) + 2 - 1  # all but the dead letter


def test_a_json_line_through_a_filter_cannot_set_them_either(indexed):
    store, expected, _ = indexed
    [event] = shown(store, '_id:"json-line"')
    assert event == dict(expected["json-line"], _id="json-line")
    assert event["input_malformed_source"] == {"host": "mail1"} and event["input_id"] == "x1"
    assert event["host"] == "web7" and event["lvl"] == "e"


def test_a_renamed_name_that_is_taken_dead_letters_the_record_with_the_reason(indexed):
    store, _, letters = indexed
    [letter] = letters
    assert (letter.record_id, letter.stage) == ("taken", "parse")
    assert "'_id'" in letter.reason and "'input_id'" in letter.reason
    assert shown(store, '_id:"taken"') == []
