"""Issue 9, item 7: no result cap. ``logpipe search`` streams any number of hits on both stores
(point in time + search_after on Elasticsearch, keyset on the embedded store) and ``--count``
prints only the number of matches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from logpipe.store import open_store
from logpipe.store.base import Event, SearchRequest, Status

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
N = 12_500


def events(n: int) -> list[Event]:
    # many events share a millisecond (the keyset's tiebreak matters); a few have no time
    out = []
    for i in range(n):
        doc = {"message": f"streamed event {i}", "host": f"h{i % 3}", "type": "app",
               "tags": [], "seq": i, "@timestamp": f"2026-11-28T10:{(i // 600) % 60:02d}:"
                                                    f"{(i // 10) % 60:02d}.{i % 7:03d}Z"}
        out.append(Event(f"ev-{i:06d}", doc))
    return out


def load(store, evs) -> None:
    store.prepare()
    outcomes = store.write(evs)
    assert all(o.status is Status.INDEXED for o in outcomes)
    store.refresh()


@pytest.fixture(scope="module")
def corpus():
    return events(N)


@pytest.fixture(scope="module")
def sqlite_url(corpus, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('stream')}/events.db"
    store = open_store(url)
    load(store, corpus)
    store.close()
    return url


@pytest.fixture(scope="module")
def es_index_url(corpus, es_url):
    from tests.fixtures.elasticsearch import cleaned_es

    with cleaned_es(es_url, timeout=120):
        url = es_url + "/?index=logpipe-stream-%Y.%m.%d"
        store = open_store(url)
        load(store, corpus)
        store.close()
        yield url


def search(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logpipe.common.cli", "search", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_more_than_ten_thousand_hits_on_both_stores(sqlite_url, es_index_url):
    seqs = {}
    for name, url in (("sqlite", sqlite_url), ("es", es_index_url)):
        run = search("--store", url, "--limit", "12000", "--json", "*")
        assert run.returncode == 0, run.stderr
        lines = run.stdout.splitlines()
        assert len(lines) == 12_000, (name, run.stderr[-500:])
        docs = [json.loads(line) for line in lines]
        stamps = [d["@timestamp"] for d in docs]
        assert stamps == sorted(stamps, reverse=True), name  # newest first, across pages
        seqs[name] = [d["seq"] for d in docs]
        assert len(set(seqs[name])) == 12_000, name  # no event twice across page boundaries
    assert set(seqs["es"]) == set(seqs["sqlite"])


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_the_whole_stream_is_every_match_once_in_order(sqlite_url, es_index_url, corpus, order):
    """Small pages, so many boundaries fall inside one millisecond."""
    expected = {e.doc["seq"] for e in corpus if e.doc["host"] == "h1"}
    for url in (sqlite_url, es_index_url):
        store = open_store(url)
        try:
            got = list(store.stream(SearchRequest(query="host:h1", limit=None, order=order),
                                    page_size=97))
        finally:
            store.close()
        assert sorted(e["seq"] for e in got) == sorted(expected), url
        stamps = [e["@timestamp"] for e in got]
        assert stamps == sorted(stamps, reverse=order == "desc"), url


def test_count_prints_only_the_number(sqlite_url, es_index_url):
    for url in (sqlite_url, es_index_url):
        assert search("--store", url, "--count", "*").stdout == f"{N}\n"
        assert search("--store", url, "--count", "host:h2").stdout == \
            f"{len(range(2, N, 3))}\n"
    both = search("--store", sqlite_url, "--count", "--top", "host", "*")
    assert both.returncode == 2 and "either --count" in both.stderr


def test_all_streams_every_match(sqlite_url):
    run = search("--store", sqlite_url, "--all", "--fields", "seq", "*")
    assert run.returncode == 0, run.stderr
    assert sorted(map(int, run.stdout.split())) == list(range(N))


def test_an_empty_store_streams_nothing(es_url, tmp_path):
    for url in (es_url + "/?index=logpipe-nothing-here-%Y", f"sqlite:///{tmp_path}/e.db"):
        store = open_store(url)
        store.prepare()
        try:
            assert list(store.stream(SearchRequest(query="*", limit=None))) == []
            assert store.count(SearchRequest(query="*")) == 0
        finally:
            store.close()
