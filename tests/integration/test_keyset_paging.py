"""One keyset per store (store/base.py's Reader): the web's pages (``search_page`` and its
opaque ``next`` cursor) and the CLI's stream walk the same order, and a cursor stays one
(millisecond, tiebreak) pair however many events share a millisecond."""

from __future__ import annotations

import pytest

from logpipe.common.errors import QueryError
from logpipe.store import open_store
from logpipe.store.base import Event, SearchRequest, Status

pytestmark = pytest.mark.integration
N = 3000
PAGE = 100
STAMP = "2026-11-28T10:00:00.123Z"


def same_millisecond(n: int) -> list[Event]:
    # ids not in insertion order, so neither store's order can come from the write order alone
    return [Event(f"same-{(i * 7919) % n:05d}", {"@timestamp": STAMP, "host": "h", "type": "app",
                                                 "message": f"one millisecond {i}", "tags": []})
            for i in range(n)]


def load(url: str, evs: list[Event]):
    store = open_store(url)
    store.prepare()
    assert all(o.status is Status.INDEXED for o in store.write(evs))
    if hasattr(store, "refresh"):
        store.refresh()
    return store


@pytest.fixture(scope="module")
def stores(es_url, tmp_path_factory):
    from tests.fixtures.elasticsearch import cleaned_es

    evs = same_millisecond(N)
    with cleaned_es(es_url, timeout=120):
        opened = {"sqlite": load(f"sqlite:///{tmp_path_factory.mktemp('keyset')}/e.db", evs),
                  "es": load(es_url + "/?index=logpipe-keyset-%Y.%m.%d", evs)}
        yield opened
        for store in opened.values():
            store.close()


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("name", ["sqlite", "es"])
def test_paging_through_one_millisecond_gets_every_id_once(stores, name, order):
    store = stores[name]
    request = SearchRequest(query="*", limit=PAGE, order=order)
    ids, cursors, after, pages = [], [], None, 0
    while True:
        page = store.search_page(request, after, with_total=pages == 0)
        if pages == 0:
            assert page.total == N
        pages += 1
        assert len(page.hits) == (PAGE if page.next else N - PAGE * (pages - 1))
        ids += [e["_id"] for e in page.hits]
        after = page.next
        if after is None:
            break
        cursors.append(after)
    assert pages == N // PAGE
    assert len(ids) == len(set(ids)) == N
    assert set(ids) == {e.id for e in same_millisecond(N)}
    # bounded: the 29th cursor is no longer than the first (one (ms, tiebreak) pair)
    assert max(len(c) for c in cursors) <= 120
    assert max(len(c) for c in cursors) - min(len(c) for c in cursors) <= 8
    # the stream walks the same order, a page of the same size at a time
    streamed = [e["_id"] for e in store.stream(SearchRequest(query="*", limit=None, order=order),
                                               page_size=PAGE)]
    assert streamed == ids


def test_a_cursor_from_the_other_store_is_a_clear_error(stores):
    request = SearchRequest(query="*", limit=PAGE)
    lite, es = stores["sqlite"].search_page(request), stores["es"].search_page(request)
    with pytest.raises(QueryError, match="cursor"):
        stores["sqlite"].search_page(request, es.next)
    with pytest.raises(QueryError, match="cursor"):
        stores["es"].search_page(request, lite.next)
    with pytest.raises(QueryError, match="cursor"):
        stores["es"].search_page(request, "!!" + "A" * 5000)


def test_the_id_copy_never_shows(stores):
    page = stores["es"].search_page(SearchRequest(query="*", limit=3))
    assert all(set(e) == {"_id", "@timestamp", "host", "type", "message", "tags"}
               for e in page.hits)
    assert set(stores["es"].get_event(page.hits[0]["_id"])) == set(page.hits[0])


def test_events_without_the_id_copy_page_too(es_url):
    """Events indexed before the writer copied the id into the document (written here without
    it) still page exactly: the index and sequence number break their ties."""
    from tests.fixtures.elasticsearch import cleaned_es

    with cleaned_es(es_url, timeout=120) as client:
        url = es_url + "/?index=logpipe-legacy-%Y.%m.%d"
        store = open_store(url)
        try:
            store.prepare()
            index = store.index_for(STAMP)
            operations: list = []
            for i in range(250):
                operations += [{"create": {"_index": index, "_id": f"old-{i:03d}"}},
                               {"@timestamp": STAMP, "host": "h", "message": f"old {i}"}]
            assert not client.bulk(operations=operations, refresh=True)["errors"]
            for order in ("desc", "asc"):
                request = SearchRequest(query="*", limit=PAGE, order=order)
                ids, after = [], None
                for _ in range(10):  # three pages; a cursor that does not move fails, never hangs
                    page = store.search_page(request, after, with_total=False)
                    ids += [e["_id"] for e in page.hits]
                    after = page.next
                    if after is None:
                        break
                assert len(ids) == len(set(ids)) == 250, order
                streamed = [e["_id"] for e in store.stream(SearchRequest(limit=None, order=order),
                                                           page_size=PAGE)]
                assert sorted(streamed) == sorted(ids), order
        finally:
            store.close()
