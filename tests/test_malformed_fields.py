"""Issue 9, item 6: a value that does not fit its typed field is stored as text, not indexed
under its type, and tagged the same way on every store (store/fields.py). The embedded store
here; Elasticsearch against it in tests/integration/test_store_equivalence.py."""

from __future__ import annotations

import pytest

from logpipe.store.base import Event, SearchRequest, Status
from logpipe.store.fields import MALFORMED_FIELD, MALFORMED_TAG, fits, mark_malformed
from logpipe.store.sqlite import SqliteStore
from tests.support.stores import search as store_search


@pytest.mark.parametrize("field,value,ok", [
    ("relayip", "10.0.0.1", True), ("relayip", "2001:db8::1", True),
    ("relayip", "123.456.789.1", False), ("relayip", "", False), ("relayip", 167772161, False),
    ("relayip", "fe80::1%eth0", False), ("relayip", ["10.0.0.1", "x"], False),
    ("size", 12, True), ("size", "12", True), ("size", 12.7, True), ("size", "-3.5", True),
    ("size", "12k", False), ("size", True, False), ("size", 2 ** 63, False),
    ("size", float("nan"), False), ("size", {"a": 1}, False), ("size", None, True),
    ("program", {"anything": 1}, True),
])
def test_what_fits_a_typed_field(field, value, ok):
    assert fits(field, value) is ok


def test_marking_keeps_the_value_as_text_and_names_the_field():
    doc = {"message": "m", "relayip": "123.456.789.1", "size": {"a": 1}, "pid": 7,
           "tags": ["mail"]}
    out = mark_malformed(doc)
    assert out["relayip"] == "123.456.789.1" and out["size"] == '{"a":1}' and out["pid"] == 7
    assert out[MALFORMED_FIELD] == ["relayip", "size"]
    assert out["tags"] == ["mail", MALFORMED_TAG]
    assert doc["tags"] == ["mail"] and "_malformed" not in doc  # the event itself is untouched
    assert mark_malformed(out) == out  # marking twice changes nothing
    clean = {"message": "m", "relayip": "10.0.0.1"}
    assert mark_malformed(clean) is clean


def test_embedded_store_stores_tags_and_does_not_index_a_malformed_value(tmp_path):
    store = SqliteStore(f"sqlite:///{tmp_path}/e.db")
    store.prepare()
    docs = [{"@timestamp": "2026-11-28T10:00:00.000Z", "message": "masked relay", "tags": [],
             "relayip": "123.456.789.1", "size": "12k", "host": "mx1"},
            {"@timestamp": "2026-11-28T10:00:01.000Z", "message": "fine relay", "tags": [],
             "relayip": "10.0.0.1", "size": 12, "host": "mx1"}]
    outcomes = store.write([Event(f"e{i}", d) for i, d in enumerate(docs)])
    assert [o.status for o in outcomes] == [Status.INDEXED] * 2

    def ids(query):
        return sorted(e["_id"] for e in store_search(store, SearchRequest(query=query, limit=10)).events)

    assert ids("relay") == ["e0", "e1"]  # the line is searchable
    assert ids("_exists_:relayip") == ["e1"] and ids("_exists_:size") == ["e1"]
    assert ids("size:[0 TO *]") == ["e1"] and ids("relayip:10.0.0.1") == ["e1"]
    assert ids("tags:_malformed_field") == ["e0"] and ids("_malformed:size") == ["e0"]
    assert store.top(SearchRequest(query="*"), "size") == [("12", 1)]
    [masked] = store_search(store, SearchRequest(query="_malformed:relayip", limit=1)).events
    assert (masked["relayip"], masked["size"]) == ("123.456.789.1", "12k")
    assert masked[MALFORMED_FIELD] == ["relayip", "size"] and masked["tags"] == [MALFORMED_TAG]
    assert "_malformed_source" not in masked
    # the web page's reads give the same document
    assert store.get_event("e0") == masked
    page = store.search_page(SearchRequest(query="tags:_malformed_field", limit=5)).hits
    assert page == [masked]
    store.close()
