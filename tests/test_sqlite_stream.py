"""The embedded store's keyset stream: every match once, in search()'s order, whatever the page
size, including events that share a millisecond and events without a time."""

from __future__ import annotations

import pytest

from logpipe.store.base import Event, SearchRequest
from logpipe.store.sqlite import SqliteStore
from tests.support.stores import search as store_search


@pytest.fixture
def store(tmp_path):
    sink = SqliteStore(f"sqlite:///{tmp_path}/e.db")
    sink.prepare()
    evs = [Event(f"e{i}", {"message": f"word {i}", "n": i, "tags": [],
                           **({"@timestamp": f"2026-11-28T10:00:0{i % 4}.000Z"} if i % 9 else {})})
           for i in range(60)]
    sink.write(evs)
    yield sink
    sink.close()


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("page", [1, 5, 7, 59, 60, 1000])
@pytest.mark.parametrize("query", ["*", "word", "n:[10 TO 40]"])
def test_stream_equals_one_big_search(store, order, page, query):
    whole = store_search(store, SearchRequest(query=query, limit=1000, order=order))
    streamed = list(store.stream(SearchRequest(query=query, limit=None, order=order),
                                 page_size=page))
    assert [e["_id"] for e in streamed] == [e["_id"] for e in whole.events]
    assert len(streamed) == whole.total
    limited = list(store.stream(SearchRequest(query=query, limit=13, order=order),
                                page_size=page))
    assert [e["_id"] for e in limited] == [e["_id"] for e in whole.events][:13]
