"""Top values (``--top``, the web's field sidebar) are exact on Elasticsearch however the events
spread over indices (shards): the real node's answers equal the embedded store's counts, on a
corpus where a terms aggregation cut per shard gets the top value wrong."""

from __future__ import annotations

import pytest

from logpipe.store import open_store
from logpipe.store.base import Event, SearchRequest, Status
from logpipe.store.elasticsearch import reader

pytestmark = pytest.mark.integration
DAYS = 4


def skewed() -> list[Event]:
    """Each daily index has ten local favourites (8 each, ties) and 300 rare values; one
    "sleeper" is 5th-rate in every index (5 each) but first overall (20)."""
    out = []

    def add(day: int, rcpt: str, size: int, n: int) -> None:
        for _ in range(n):
            i = len(out)
            out.append(Event(f"top-{i:06d}", {
                "@timestamp": f"2026-11-{20 + day:02d}T10:{i % 60:02d}:00.000Z", "host": "mail1",
                "type": "mail", "message": f"event {i}", "rcpt": rcpt, "size": size,
                "tags": []}))

    for day in range(DAYS):
        add(day, "sleeper@example.org", 4242, 5)
        for j in range(10):
            add(day, f"local-{day}-{j}@example.org", 1000 * (day + 1) + j, 8)
        for j in range(300):
            add(day, f"rare-{day}-{j:03d}@example.org", 100_000 + day * 1000 + j, 1 + j % 3)
    return out


@pytest.fixture(scope="module")
def stores(es_url, tmp_path_factory):
    from tests.fixtures.elasticsearch import cleaned_es

    evs = skewed()
    with cleaned_es(es_url, timeout=120) as client:
        opened = {}
        for name, url in (("sqlite", f"sqlite:///{tmp_path_factory.mktemp('top')}/e.db"),
                          ("es", es_url + "/?index=logpipe-top-%Y.%m.%d")):
            store = opened[name] = open_store(url)
            store.prepare()
            assert all(o.status is Status.INDEXED for o in store.write(evs))
        opened["es"].refresh()
        assert len(client.indices.get(index="logpipe-top-*")) == DAYS
        yield opened
        for store in opened.values():
            store.close()


CASES = [("*", "rcpt", 5), ("*", "rcpt", 12), ("*", "size", 5), ("*", "size", 40),
         ("NOT rcpt:sleeper*", "rcpt", 3), ("*", "host", 10), ("*", "nosuchfield", 5)]


def test_the_corpus_fools_a_terms_aggregation_cut_per_shard(stores):
    """Without the exactness check, a shard size under the favourites' count loses the
    sleeper: what the next tests guard against is real on this corpus."""
    es = stores["es"]
    resp = es.client.search(index="logpipe-top-*", size=0, aggs={"t": {"terms": {
        "field": "rcpt", "size": 1, "shard_size": 10}}})
    agg = resp["aggregations"]["t"]
    assert agg["buckets"][0]["key"] != "sleeper@example.org"
    assert agg["doc_count_error_upper_bound"] > 0
    assert stores["sqlite"].top(SearchRequest(), "rcpt", 1) == [("sleeper@example.org", 20)]


@pytest.mark.parametrize("query,field,size", CASES)
def test_top_values_equal_the_embedded_stores_counts(stores, query, field, size):
    request = SearchRequest(query=query)
    expected = stores["sqlite"].top(request, field, size)
    assert stores["es"].top(request, field, size) == expected
    if field == "rcpt" and query == "*":
        assert expected[0] == ("sleeper@example.org", 20)


@pytest.mark.parametrize("query,field,size", CASES)
def test_the_composite_walk_is_exact_too(stores, monkeypatch, query, field, size):
    """More distinct values on a shard than the terms aggregation's shard size: the walk over
    every bucket (small pages, so the walk spans many) gives the same answer."""
    monkeypatch.setattr(reader, "TERMS_SHARD_SIZE", 10)
    monkeypatch.setattr(reader, "COMPOSITE_PAGE", 7)
    request = SearchRequest(query=query)
    assert stores["es"].top(request, field, size) == stores["sqlite"].top(request, field, size)
