"""The embedded store (store/sqlite/)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime, timezone

import pytest

from logpipe.common.errors import ConfigError, QueryError, StoreError
from logpipe.query import datemath
from logpipe.store import open_store
from logpipe.store.base import Event, SearchRequest, Status
from logpipe.store.sqlite import SqliteStore, parse_url, timestamp_ms
from tests.support.stores import search as store_search


def ev(i: int, minute: int | None = None, **fields) -> Event:
    minute = i if minute is None else minute
    doc = {"@timestamp": f"2026-11-28T10:{minute:02d}:00.000Z",
           "message": f"sendmail[{100 + i}]: r4F{i:03d}: to=<u{i}@example.com>, stat=Sent "
                      f"(Queued!) relay=mx.example.net.",
           "host": "mail1" if i % 2 else "mail2", "type": "mail", "program": "sendmail",
           "qid": f"r4F{i:03d}", "size": 1000 * i, "tags": ["mail", f"t{i % 3}"]}
    doc.update(fields)
    return Event(f"id-{i}", doc)


@pytest.fixture
def store(tmp_path):
    sink = SqliteStore("sqlite:///" + str(tmp_path / "state" / "events.db"))
    sink.prepare()
    yield sink
    sink.close()


def test_url_convention():
    assert parse_url("sqlite:///rel/events.db") == ("rel/events.db", {})
    assert parse_url("sqlite:////abs/events.db?timeout=5") == ("/abs/events.db",
                                                               {"timeout": "5"})
    assert parse_url("sqlite:///:memory:")[0] == ":memory:"
    for bad in ("sqlite://", "sqlite:///", "sqlite://host/x.db", "postgres:///x"):
        with pytest.raises(ConfigError):
            parse_url(bad)
    assert isinstance(open_store("sqlite:///:memory:"), SqliteStore)
    with pytest.raises(ConfigError):
        SqliteStore("sqlite:///:memory:?synchronous=sometimes")


def test_relative_urls_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sink = SqliteStore("sqlite:///sub/events.db")
    sink.prepare()
    sink.close()
    assert (tmp_path / "sub" / "events.db").exists()


def test_write_reports_indexed_then_duplicate_and_never_stores_twice(store):
    first = store.write([ev(1), ev(2), ev(1)])
    assert [o.status for o in first] == [Status.INDEXED, Status.INDEXED, Status.DUPLICATE]
    again = store.write([ev(2), ev(3)])
    assert [o.status for o in again] == [Status.DUPLICATE, Status.INDEXED]
    assert store_search(store, SearchRequest(limit=100)).total == 3
    assert store_search(store, SearchRequest(query="r4F002")).total == 1


def test_bad_events_are_rejected_alone(store):
    out = store.write([ev(1), Event("bad", {"@timestamp": "not a time", "message": "x"}),
                       Event("obj", {"@timestamp": "2026-11-28T10:00:00Z", "x": object()}),
                       ev(2)])
    assert [o.status for o in out] == [Status.INDEXED, Status.REJECTED, Status.REJECTED,
                                       Status.INDEXED]
    assert "@timestamp" in out[1].reason
    huge = store.write([Event("huge", {"@timestamp": 1e30, "message": "x"}), ev(3)])
    assert [o.status for o in huge] == [Status.REJECTED, Status.INDEXED]


def test_search_orders_by_time_and_returns_the_documents(store):
    store.write([ev(i) for i in range(10)])
    newest = store_search(store, SearchRequest(limit=3))
    assert newest.total == 10
    assert [e["_id"] for e in newest.events] == ["id-9", "id-8", "id-7"]
    oldest = store_search(store, SearchRequest(limit=2, order="asc"))
    assert [e["qid"] for e in oldest.events] == ["r4F000", "r4F001"]
    assert oldest.events[0]["tags"] == ["mail", "t0"] and oldest.events[0]["size"] == 0
    window = store_search(store, SearchRequest(start=datetime(2026, 11, 28, 10, 3, tzinfo=timezone.utc),
                                        end=datetime(2026, 11, 28, 10, 5, tzinfo=timezone.utc)))
    assert sorted(e["qid"] for e in window.events) == ["r4F003", "r4F004"]


@pytest.mark.parametrize("query,expected", [
    ("program:sendmail AND qid:r4F00*", 10),
    ("qid:R4F001", 0),
    ("size:[5000 TO *]", 5),
    ("size:{5000 TO 7000]", 2),
    ("size:<2000", 2),
    ("tags:t1", 3),
    ("tags:(t1 OR t2) AND NOT host:mail1", 3),
    ('"stat=Sent"', 10),
    ('"sent queued"', 10),
    ('"queued sent"', 0),
    ("SENT", 10),
    ("mx.example.net", 10),
    ("example", 0),
    ("u3@example.com", 1),
    ("sen*", 10),
    ("*ued", 10),
    ("_exists_:relay", 2),
    ("NOT relay:localhost", 9),
    ("relay:localhost", 1),
    ("@timestamp:[2026-11-28T10:02 TO 2026-11-28T10:04]", 3),
    ("@timestamp:2026-11-28", 10),
    ("_id:id-4", 1),
    ("*", 10),
])
def test_queries(store, query, expected):
    events = [ev(i) for i in range(10)]
    events[1].doc["relay"] = "localhost"
    events[2].doc["relay"] = ["a", "b"]
    store.write(events)
    assert store_search(store, SearchRequest(query=query, limit=100)).total == expected


def test_histogram_fills_empty_buckets(store):
    store.write([ev(0, minute=0), ev(1, minute=1), ev(2, minute=1), ev(3, minute=7)])
    buckets = store.histogram(SearchRequest(), "2m")
    assert [(b.minute, n) for b, n in buckets] == [(0, 3), (2, 0), (4, 0), (6, 1)]
    assert store.histogram(SearchRequest(query="nothing"), "1m") == []
    with pytest.raises(QueryError):
        store.histogram(SearchRequest(), "1x")


@pytest.mark.parametrize("query", ["*", "program:sendmail", "host:mail1",
                                   "host:mail1 AND @timestamp:[2026-11-28T10:02 TO *]",
                                   "qid:r4F00*", "sent", "size:[0 TO 5000]", "nothing"])
@pytest.mark.parametrize("interval", ["1m", "3m", "1h"])
def test_histogram_by_index_ranges_equals_group_by(store, query, interval):
    """Both ways of counting buckets give the same buckets (floored, gaps filled)."""

    store.write([ev(i, minute=(i * 7) % 60) for i in range(40)])
    request = SearchRequest(query=query)
    step = datemath.parse_interval(interval)
    where, params = store.reader._where(request)
    by_range = store.aggregations._histogram_by_range(where, params, step)
    rows = store.reader._run(f"SELECT events.ts - ((events.ts % ?) + ?) % ? AS b, count(*) FROM events "
                      f"WHERE {where} AND events.ts IS NOT NULL GROUP BY b ORDER BY b",
                      [step, step, step] + params)
    assert by_range == datemath.fill_buckets(rows, step) == store.histogram(request, interval)
    assert sum(n for _, n in by_range) == store.count(request)


def test_histogram_buckets_floor_before_1970(store):
    store.write([Event("a", {"@timestamp": "1969-12-31T23:59:30Z", "message": "x"}),
                 Event("b", {"@timestamp": "1970-01-01T00:00:30Z", "message": "x"})])
    for query in ("*", "x"):  # index ranges, GROUP BY
        buckets = store.histogram(SearchRequest(query=query), "1m")
        assert [(b.isoformat(), n) for b, n in buckets] == \
            [("1969-12-31T23:59:00+00:00", 1), ("1970-01-01T00:00:00+00:00", 1)]


def test_a_big_write_with_repeats_in_several_chunks(store):
    """A write larger than the preparation chunk: rows and their full text stay paired when
    repeats (already stored, or twice in the batch) and rejects are spread over the chunks."""
    from logpipe.store.sqlite import writer as S

    n = 3 * S._PIPE_CHUNK + 17
    store.write([ev(i, i % 60) for i in range(0, n, 5)])  # every fifth is already there
    batch = [ev(i, i % 60) for i in range(n)] + [ev(3, 3)]
    batch[11] = Event("bad", {"@timestamp": "not a time", "message": "x"})
    out = store.write(batch)
    status = [o.status for o in out]
    assert status[11] is Status.REJECTED and status[-1] is Status.DUPLICATE
    for i in range(n):
        if i != 11:
            assert status[i] is (Status.DUPLICATE if i % 5 == 0 else Status.INDEXED), i
    assert store.count(SearchRequest()) == n - 1
    for i in (1, 5, S._PIPE_CHUNK + 1, n - 1):  # the message of event i names r4F{i:03d}
        assert store_search(store, SearchRequest(query=f"r4F{i:03d}")).total == 1
        assert store_search(store, SearchRequest(query=f'"r4F{i:03d} to"')).total == 1
    assert store_search(store, SearchRequest(query="sendmail")).total == n - 1
    # no full-text row without its event: the index holds exactly one entry per event
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'sendmail'"
                      ).fetchone() == (n - 1,)
    assert db.execute("SELECT count(*) FROM events WHERE rowid NOT IN (SELECT rowid FROM "
                      "events_fts WHERE events_fts MATCH 'sendmail')").fetchone() == (0,)


def test_partial_indexes_serve_qid_and_size_queries(store):
    store.write([ev(i) for i in range(10)])
    for query, index in (("qid:r4F003", "events_qid_ts"), ("qid:r4F00*", "events_qid_ts"),
                         ("size:[1000 TO 3000]", "events_size_ts")):
        where, params = store.reader._where(SearchRequest(query=query))
        plan = " ".join(str(r) for r in store.db.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT count(*) FROM events WHERE {where}", params))
        assert index in plan, (query, plan)


def test_top_values(store):
    store.write([ev(i) for i in range(10)])
    assert store.top(SearchRequest(), "host") == [("mail1", 5), ("mail2", 5)]
    assert store.top(SearchRequest(), "tags", 2) == [("mail", 10), ("t0", 4)]
    assert store.top(SearchRequest(query="size:[7000 TO *]"), "size") == \
        [("7000", 1), ("8000", 1), ("9000", 1)]
    assert store.top(SearchRequest(), "nosuchfield") == []


def test_prune_deletes_old_events_and_their_full_text(store):
    store.write([ev(i) for i in range(10)])
    gone = store.prune(datetime(2026, 11, 28, 10, 4, tzinfo=timezone.utc))
    assert gone == 4
    assert store_search(store, SearchRequest()).total == 6
    assert store_search(store, SearchRequest(query="r4F002")).total == 0
    assert store_search(store, SearchRequest(query="r4F005")).total == 1
    # the full-text index holds no trace of the pruned rows
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT count(*) FROM events_fts_vocab WHERE term = 'r4f002'").fetchone() \
        == (0,)
    assert db.execute("SELECT count(*) FROM events_fts_vocab WHERE term = 'r4f005'").fetchone() \
        == (1,)
    assert store.prune(datetime(2026, 11, 28, 10, 4, tzinfo=timezone.utc)) == 0


def test_prune_rebuilds_the_index_when_the_analyzer_changed(store):
    store.write([ev(i) for i in range(4)])
    store.db.conn.execute("UPDATE meta SET value = 'old' WHERE key = 'analyzer'")
    assert store.prune(datetime(2026, 11, 28, 10, 2, tzinfo=timezone.utc)) == 2
    assert store_search(store, SearchRequest(query="sendmail")).total == 2
    assert store_search(store, SearchRequest(query="r4F001")).total == 0


def test_reading_a_store_that_does_not_exist_is_a_clear_error(tmp_path):
    sink = SqliteStore("sqlite:///" + str(tmp_path / "none.db"))
    with pytest.raises(StoreError) as err:
        store_search(sink, SearchRequest())
    assert "nothing has been indexed" in str(err.value)
    assert not (tmp_path / "none.db").exists()


def test_timestamps():
    assert timestamp_ms("1970-01-01T00:00:01.5Z") == 1500
    assert timestamp_ms("1970-01-01T01:00:00+01:00") == 0
    assert timestamp_ms("1970-01-01") == 0
    assert timestamp_ms(None) is None
    with pytest.raises(ValueError):
        timestamp_ms("yesterday")


def _writer(path: str, worker: int, n: int, queue) -> None:
    sink = SqliteStore("sqlite:///" + path, timeout=60)
    sink.prepare()
    statuses = []
    for start in range(0, n, 50):
        # every worker writes the shared ids 0..n-1 plus its own ids
        batch = [ev(i % 60) for i in range(start, start + 50)]
        batch += [Event(f"w{worker}-{i}", ev(i % 60).doc) for i in range(start, start + 50)]
        statuses += [o.status.value for o in sink.write(batch)]
    sink.close()
    queue.put(statuses)


def run_processes(target, arg_tuples) -> list:
    """Run ``target(*args, queue)`` in one spawned process per tuple; what each put, in the
    order they finished. Every process must exit cleanly."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, queue)) for args in arg_tuples]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_several_processes_write_at_once(tmp_path):
    path = str(tmp_path / "events.db")
    results = run_processes(_writer, [(path, w, 300) for w in range(3)])
    statuses = [s for r in results for s in r]
    assert "retry" not in statuses and "rejected" not in statuses
    sink = SqliteStore("sqlite:///" + path)
    # 60 shared ids stored once, each worker's 300 own ids once
    assert store_search(sink, SearchRequest()).total == 60 + 3 * 300
    assert statuses.count("indexed") == 60 + 3 * 300
    assert store_search(sink, SearchRequest(query="r4F007")).total == 1 + 3 * 5
    sink.close()


# ------------------------------------------------------------ full text indexed behind the writes

def _fts_count(path: str, word: str = "sendmail") -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH ?",
                          (word,)).fetchone()[0]
    finally:
        db.close()


def _mark(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT value FROM meta WHERE key = 'fts_mark'").fetchone()[0])
    finally:
        db.close()


@pytest.fixture
def no_background_refresh(monkeypatch):
    from logpipe.store.sqlite import writer as S

    monkeypatch.setattr(S, "_REFRESH_S", 1e9)


@pytest.fixture
def deferred(tmp_path):
    """A store whose writes leave the full text to the catch-up (fts=deferred)."""
    sink = SqliteStore("sqlite:///" + str(tmp_path / "state" / "events.db") + "?fts=deferred")
    sink.prepare()
    yield sink
    sink.close()


def test_writes_index_full_text_at_once_while_the_index_is_caught_up(store,
                                                                    no_background_refresh):
    store.write([ev(i) for i in range(10)])
    assert _fts_count(store.path) == 10 and _mark(store.path) == 10
    store.write([ev(3)] + [ev(i) for i in range(10, 12)])  # a repeat: indexed once
    assert _fts_count(store.path) == 12 and _mark(store.path) == 13
    assert store.refresh() == 0
    assert store_search(store, SearchRequest(query="r4F011")).total == 1


def test_inline_full_text_waits_while_older_rows_are_not_indexed(tmp_path,
                                                                 no_background_refresh):
    path = str(tmp_path / "events.db")
    bulk = SqliteStore("sqlite:///" + path + "?fts=deferred")
    bulk.write([ev(i) for i in range(5)])  # rows 1..5, not indexed
    live = SqliteStore("sqlite:///" + path)
    live.write([ev(i) for i in range(5, 8)])  # cannot index 6..8 above unindexed rows
    assert _fts_count(path) == 0 and _mark(path) == 0
    assert store_search(live, SearchRequest(query="sendmail")).total == 8
    live.write([ev(9)])  # caught up again: indexed as written
    assert _fts_count(path) == 9 and _mark(path) == 9
    bulk.close()
    live.close()


def test_search_sees_rows_written_but_not_yet_in_the_full_text_index(deferred,
                                                                     no_background_refresh):
    store = deferred
    store.write([ev(i) for i in range(10)])
    assert _fts_count(store.path) == 0 and _mark(store.path) == 0  # writes store rows only
    # non-full-text queries do not need the index and leave it alone
    assert store.count(SearchRequest(query="qid:r4F003")) == 1
    assert _mark(store.path) == 0
    # a full-text query catches up first, in whatever form it comes
    assert store_search(store, SearchRequest(query="r4F003")).total == 1
    assert _fts_count(store.path) == 10 and _mark(store.path) == 10
    store.write([ev(i) for i in range(10, 15)])
    assert store.count(SearchRequest(query='"stat Sent"')) == 15
    assert sum(n for _, n in store.histogram(SearchRequest(query="message:sendmail"), "1m")) \
        == 15
    assert store.top(SearchRequest(query="r4F012"), "qid") == [("r4F012", 1)]
    assert store_search(store, SearchRequest(query="qid:r4F01* AND r4F01*")).total == 5
    assert _fts_count(store.path) == 15  # every row indexed exactly once
    assert store.refresh() == 0


def test_writes_catch_up_a_bounded_number_of_rows_now_and_then(deferred, monkeypatch):
    store = deferred
    from logpipe.store.sqlite import writer as S

    monkeypatch.setattr(S, "_REFRESH_S", 0.0)
    monkeypatch.setattr(S, "_REFRESH_ROWS", 4)
    store.write([ev(i) for i in range(10)])
    assert _mark(store.path) == 4 and _fts_count(store.path) == 4
    store.write([ev(10)])
    assert _mark(store.path) == 8
    assert store_search(store, SearchRequest(query="sendmail")).total == 11
    assert _fts_count(store.path) == 11


def test_prune_after_a_partial_catch_up(deferred, no_background_refresh):
    store = deferred
    store.write([ev(i) for i in range(10)])  # rowids 1..10, minute i
    store.writer._catch_up(limit=4)  # rowids 1..4 indexed, 5..10 not yet
    assert _mark(store.path) == 4
    # rows 0..5 go: four of them are in the index, two are not (and must not be 'deleted')
    assert store.prune(datetime(2026, 11, 28, 10, 6, tzinfo=timezone.utc)) == 6
    assert store_search(store, SearchRequest(query="sendmail")).total == 4
    assert store_search(store, SearchRequest(query="r4F003")).total == 0
    assert store_search(store, SearchRequest(query="r4F007")).total == 1
    db = sqlite3.connect(store.path)
    for i in range(6):
        assert db.execute("SELECT count(*) FROM events_fts_vocab WHERE term = ?",
                          (f"r4f{i:03d}",)).fetchone() == (0,), i
    assert db.execute("SELECT count(*) FROM events_fts_vocab WHERE term = 'r4f008'").fetchone() \
        == (1,)
    db.close()
    assert _fts_count(store.path) == 4


def test_a_pruned_tail_does_not_hand_out_indexed_rowids_again(store, no_background_refresh):
    store.write([ev(i) for i in range(5)])
    assert _mark(store.path) == 5  # indexed as written
    assert store.prune(datetime(2026, 11, 28, 11, tzinfo=timezone.utc)) == 5
    store.write([ev(7, 30)])  # would be rowid 1 again if rowids followed MAX(rowid)
    assert store_search(store, SearchRequest(query="r4F007")).total == 1
    assert store_search(store, SearchRequest(query="sendmail")).total == 1


def test_a_store_from_before_the_catch_up_counts_as_indexed(tmp_path, no_background_refresh):
    path = str(tmp_path / "events.db")
    sink = SqliteStore("sqlite:///" + path)
    sink.write([ev(i) for i in range(3)])
    sink.refresh()
    sink.db.conn.execute("DELETE FROM meta WHERE key = 'fts_mark'")  # as an older logpipe left it
    sink.close()
    reader = SqliteStore("sqlite:///" + path)
    assert store_search(reader, SearchRequest(query="sendmail")).total == 3
    assert _fts_count(path) == 3 and _mark(path) == 3  # nothing indexed twice
    reader.close()


def _writer_searcher(path: str, worker: int, n: int, queue) -> None:
    sink = SqliteStore("sqlite:///" + path, timeout=60)
    sink.prepare()
    seen = []
    for start in range(0, n, 25):
        batch = [Event(f"x{worker}-{i}", ev(i % 60, message=f"worker{worker} item{i} sendmail")
                       .doc) for i in range(start, start + 25)]
        assert all(o.status is Status.INDEXED for o in sink.write(batch))
        # its own rows are all found at once, whatever the others wrote or indexed meanwhile
        seen.append(store_search(sink, SearchRequest(query=f"worker{worker}")).total == start + 25)
    sink.close()
    queue.put(seen)


def test_several_processes_write_and_search_full_text_at_once(tmp_path):
    path = str(tmp_path / "events.db")
    results = run_processes(_writer_searcher, [(path, w, 200) for w in range(2)])
    assert all(all(r) for r in results), results
    sink = SqliteStore("sqlite:///" + path)
    assert store_search(sink, SearchRequest(query="sendmail")).total == 400
    assert store_search(sink, SearchRequest(query='"worker1 item7"')).total == 1
    sink.close()
    # each row in the full-text index exactly once: none twice, none missing
    assert _fts_count(path) == 400


# -- fields promoted by use: a value index answers as reading the documents does -------------

_MIXED = ["Sent", "Deferred", "[10.0.0.1]", "{odd}", 5, 12.5, True, None, ["Sent", "x"],
          ["a", ["Sent"]], {"k": "Sent"}, [], "sent", "Se", 0, "", ["[x]"], "12"]
_VALUE_QUERIES = ["stat:Sent", "stat:sent", "stat:Se*", "stat:*ent", "stat:\\[10*", "stat:\\{*",
                  "stat:5", "stat:12.5", "stat:true", "stat:1", "stat:[1 TO 20]",
                  "stat:{5 TO *}", "stat:[A TO T]", "stat:[\\[ TO z]", "NOT stat:Sent",
                  "stat:Sent OR size:3000", "stat:1*", "stat:x", "stat:a", "stat:\\[x\\]",
                  "stat:12", "stat:?ent", "stat:*", "stat:S?nt*", "stat:{5 TO *]",
                  "stat:[* TO 12]", "stat:{A TO Sent}", "stat:[* TO *]", "stat:-*"]


def _mixed_store(path: str) -> SqliteStore:
    sink = SqliteStore("sqlite:///" + path)
    sink.write([ev(i, i % 60, stat=v) for i, v in enumerate(_MIXED * 3)]
               + [ev(100 + i, i) for i in range(5)])  # and some without the field
    return sink


def _top_both_ways(sink, field: str, query: str, size: int) -> list:
    return sink.top(SearchRequest(query=query), field, size)


def test_a_value_index_gives_what_reading_the_documents_gives(tmp_path, monkeypatch):
    from logpipe.store.sqlite import aggregations as R

    plain = _mixed_store(str(tmp_path / "plain.db"))  # never maintained: no value index
    expected = {q: sorted(e["_id"] for e in store_search(plain, SearchRequest(query=q, limit=500))
                          .events) for q in _VALUE_QUERIES}
    expected_top = plain.top(SearchRequest(query="*"), "stat", 50)
    expected_top_q = plain.top(SearchRequest(query="host:mail1"), "stat", 50)
    assert not _value_index_names(plain.path)
    plain.close()
    indexed = _mixed_store(str(tmp_path / "indexed.db"))
    assert indexed.promote(["stat"]) == ["stat"]
    for q, ids in expected.items():
        got = sorted(e["_id"] for e in store_search(indexed, SearchRequest(query=q, limit=500)).events)
        assert got == ids, q
    assert indexed.top(SearchRequest(query="*"), "stat", 50) == expected_top
    assert indexed.top(SearchRequest(query="host:mail1"), "stat", 50) == expected_top_q
    # the other ways top counts: along the index for a query, and GROUP BY past many values
    monkeypatch.setattr(R, "_TOP_BY_FIELD_INDEX", 0)
    assert indexed.top(SearchRequest(query="host:mail1"), "stat", 50) == expected_top_q
    monkeypatch.setattr(R, "_TOP_DISTINCT_WALK", 3)
    assert indexed.top(SearchRequest(query="*"), "stat", 50) == expected_top
    assert indexed.top(SearchRequest(query="host:mail1"), "stat", 50) == expected_top_q
    monkeypatch.undo()
    assert len(_value_index_names(indexed.path)) == 1  # one index, for stat
    indexed.close()


def _value_index_names(path: str) -> list[str]:
    db = sqlite3.connect(path)
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name LIKE "
                                      "'events_jt_%'")]
    db.close()
    return names


def test_top_of_scalar_values_by_groups_breaks_ties_by_value(tmp_path, monkeypatch):
    """The one-pass top (GROUP BY along the value index, groups named by a rowid) gives what
    reading the documents gives, ties at the cut ordered by value (numbers first)."""
    from logpipe.store.sqlite import aggregations as R

    values = ["b", "a", "c", "a", 7, "d", "b", 7, "e", 3, "f", "a", "zz", "0", 2.5, "b", "y"]
    events = [ev(i, i % 60, relay=v, host="mail1" if i % 3 else "mail2")
              for i, v in enumerate(values * 2)]
    plain = SqliteStore("sqlite:///" + str(tmp_path / "plain.db"))
    plain.write(events)
    indexed = SqliteStore("sqlite:///" + str(tmp_path / "indexed.db"))
    indexed.write(events)
    assert indexed.promote(["relay"]) == ["relay"]
    monkeypatch.setattr(R, "_TOP_BY_FIELD_INDEX", 0)   # along the field's index
    monkeypatch.setattr(R, "_TOP_DISTINCT_WALK", 0)    # by groups, not value by value
    # (not from the value counts, which serve everything and one term on host)
    monkeypatch.setattr(R.SqliteAggregations, "_top_by_counts", lambda self, *a: None)
    calls = []
    real = R.SqliteAggregations._top_by_groups

    def spy(self, *args):
        calls.append(args[0])
        return real(self, *args)

    monkeypatch.setattr(R.SqliteAggregations, "_top_by_groups", spy)
    for query in ("*", "host:mail1", "host:mail2"):
        for size in (1, 2, 3, 4, 5, 8, 50):
            want = plain.top(SearchRequest(query=query), "relay", size)
            assert indexed.top(SearchRequest(query=query), "relay", size) == want, (query, size)
    assert calls
    assert plain.top(SearchRequest(), "relay", 4) == [("a", 6), ("b", 6), ("7", 4), ("2.5", 2)]
    plain.close()
    indexed.close()


def test_a_search_notes_the_wanted_index_and_maintenance_builds_it(tmp_path):
    """A search on a field without a value index never builds one (nor waits for the write
    lock): it notes the wish; maintenance builds the index; then the query plan uses it."""
    path = str(tmp_path / "events.db")
    sink = SqliteStore("sqlite:///" + path)
    sink.write([ev(i, msgid=f"<m{i}@x>") for i in range(30)])
    statements: list[str] = []
    sink.db.conn.set_trace_callback(statements.append)
    # another connection holds the write lock all along: the search neither waits nor fails
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    assert store_search(sink, SearchRequest(query=r"msgid:\<m7@x\>")).total == 1
    assert not any("CREATE INDEX" in s or "BEGIN IMMEDIATE" in s for s in statements)
    assert sink.wanted_fields() == []   # the wish could not be written while locked
    other.execute("ROLLBACK")
    other.close()
    sink2 = SqliteStore("sqlite:///" + path)  # (a new reader notes the wish again)
    assert sink2.top(SearchRequest(), "msgid", 3)[0][1] == 1
    assert sink2.wanted_fields() == ["msgid"]
    assert not _value_index_names(path)
    sink2.close()
    sink.db.conn.set_trace_callback(None)
    # maintenance: counts catch-up, then the wanted index; then nothing left
    done = [sink.maintain() for _ in range(4)]
    assert done[-1] == 0 and 1 in done
    assert len(_value_index_names(path)) == 1 and sink.wanted_fields() == []
    where, params = sink.reader._where(SearchRequest(query=r"msgid:\<m7@x\>"))
    plan = " ".join(str(r) for r in sink.db.conn.execute(
        f"EXPLAIN QUERY PLAN SELECT count(*) FROM events WHERE {where}", params))
    assert _value_index_names(path)[0] in plan, plan
    assert store_search(sink, SearchRequest(query=r"msgid:\<m7@x\>")).total == 1
    with pytest.raises(QueryError, match="cannot have a value index"):
        sink.promote(["host"])
    sink.close()


def test_busy_maintenance_counts_but_leaves_value_indexes_for_an_idle_moment(tmp_path):
    """maintain(busy=True), what a never-idle indexer runs now and then: the short steps (the
    per-hour counts) go on, the value index a search asked for waits (it holds the writers
    back for as long as SQLite reads every event)."""
    path = str(tmp_path / "events.db")
    sink = SqliteStore("sqlite:///" + path)
    sink.write([ev(i, msgid=f"<m{i}@x>") for i in range(30)])
    assert sink.top(SearchRequest(), "msgid", 3)[0][1] == 1
    assert sink.wanted_fields() == ["msgid"]
    busy = []
    while (done := sink.maintain(busy=True)):
        busy.append(done)
    assert sum(busy) == 30  # every event counted
    assert not _value_index_names(path) and sink.wanted_fields() == ["msgid"]
    assert sink.roll_up() == 0
    assert sink.maintain() == 1 and len(_value_index_names(path)) == 1
    assert sink.maintain() == 0 and sink.wanted_fields() == []
    sink.close()


def test_an_index_of_the_older_layout_is_rebuilt_by_maintenance(tmp_path):
    from logpipe.store.sqlite.schema import json_index_name, json_value_sql

    path = str(tmp_path / "events.db")
    sink = SqliteStore("sqlite:///" + path)
    sink.write([ev(i, stat="Sent" if i % 2 else "Deferred") for i in range(10)])
    old = json_index_name("stat", "1")
    sink.db.conn.execute(f"CREATE INDEX {old} ON events({json_value_sql('stat')}, ts)")
    assert sink.wanted_fields() == ["stat"]
    while sink.maintain():
        pass
    assert _value_index_names(path) == [json_index_name("stat")]
    assert store_search(sink, SearchRequest(query="stat:Sent")).total == 5
    sink.close()


def test_a_page_total_counts_up_to_the_tracking_limit(store, monkeypatch):
    """Past TRACK_TOTAL_HITS a page says "at least" (Elasticsearch's default); count() is
    exact; the page itself is the same whichever plan finds it (walking the time index)."""
    from logpipe.store.sqlite import paging as R

    store.write([ev(i, i % 60, stat="Sent" if i % 3 else "Deferred") for i in range(120)])
    store.promote(["stat"])
    monkeypatch.setattr(R, "TRACK_TOTAL_HITS", 50)
    for query in ("stat:Sent", "stat:Se*", "size:[1000 TO *]", "host:mail1", "*"):
        request = SearchRequest(query=query, limit=7)
        exact = store.count(request)
        everything = [e["_id"] for e in store.stream(SearchRequest(query=query, limit=None))]
        page = store.search_page(request)
        assert len(everything) == exact > 50
        assert (page.total, page.total_relation, page.total_text) == (50, "gte", "50+")
        assert [e["_id"] for e in page.hits] == everything[:7], query
        second = store.search_page(request, page.next, with_total=False)
        assert second.total is None
        assert [e["_id"] for e in second.hits] == everything[7:14], query
        monkeypatch.setattr(R, "_WALK_ROWS", 1)  # the walk finds too few: the sorted plan
        assert [e["_id"] for e in store.search_page(request).hits] == everything[:7]
        monkeypatch.setattr(R, "_WALK_ROWS", 2000)
    few = store.search_page(SearchRequest(query="stat:Deferred", limit=3))
    assert (few.total, few.total_relation, few.total_text) == (40, "eq", "40")
    result = store_search(store, SearchRequest(query="stat:Sent", limit=3))
    assert (result.total, result.total_relation) == (50, "gte")


def test_histograms_from_the_hourly_counts_equal_counting_the_events(tmp_path):
    """Per-hour counts (maintenance) + the rows not counted yet + the window's partial hours
    give what counting the events gives, after duplicates, more writes and retention."""
    from logpipe.store.sqlite import aggregations as R

    def events(start: int, n: int) -> list[Event]:
        out = []
        for i in range(start, start + n):
            minute = (i * 7) % (60 * 80)   # spread over 80 hours, out of order
            doc = {"@timestamp": datetime.fromtimestamp(
                       1_764_324_000 + minute * 60 + i % 60, timezone.utc).isoformat(),
                   "message": f"m{i}", "host": f"mail{i % 3}", "type": "mail",
                   "program": "sendmail" if i % 4 else "postfix/smtp"}
            if i % 11 == 0:
                del doc["host"]
            out.append(Event(f"e{i}", doc))
        return out

    sink = SqliteStore("sqlite:///" + str(tmp_path / "events.db"))
    sink.write(events(0, 400))
    t0 = datetime(2025, 11, 28, 10, 17, tzinfo=timezone.utc)
    windows = [(None, None), (t0, None), (None, datetime(2025, 11, 29, 3, 5, tzinfo=timezone.utc)),
               (t0, datetime(2025, 11, 28, 20, 44, 13, tzinfo=timezone.utc))]
    queries = ["*", "host:mail1", "program:postfix/smtp", "type:mail", "host:nosuch"]

    def check(expect_counts: bool):
        for q in queries:
            for start, end in windows:
                for interval in ("1h", "3h", "1d", "2d"):
                    request = SearchRequest(query=q, start=start, end=end)
                    got = sink.histogram(request, interval)
                    where, params = sink.reader._where(request)
                    step = datemath.parse_interval(interval)
                    rows = sink.reader._run(f"SELECT events.ts - ((events.ts % ?) + ?) % ? AS b, "
                                     f"count(*) FROM events WHERE {where} AND events.ts IS NOT "
                                     f"NULL GROUP BY b ORDER BY b", [step] * 3 + params)
                    assert got == datemath.fill_buckets(rows, step), (q, start, end, interval)

    calls = []
    real = R.rollup.counted_histogram

    def spy(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    R.rollup.counted_histogram = spy
    try:
        check(False)
        assert sink.roll_up() == 400
        check(True)
        assert any(calls)
        sink.write(events(300, 200))         # 100 repeats, 100 new rows above the mark
        check(True)
        sink.roll_up(limit=30)               # part of them counted
        check(True)
        assert sink.prune(datetime(2025, 11, 28, 12, 30, tzinfo=timezone.utc)) > 0
        check(True)
        while sink.maintain():
            pass
        check(True)
        assert sink.prune(datetime(2025, 11, 30, tzinfo=timezone.utc)) > 0  # all of them
        sink.write(events(1000, 50))
        check(True)
        sink.roll_up()
        check(True)
    finally:
        R.rollup.counted_histogram = real
    sink.close()


def test_the_pipelines_own_timestamp_form_reads_as_the_general_parser_does():
    """timestamp_ms reads ``YYYY-MM-DDTHH:MM:SS.mmmZ`` as numbers; it must agree with
    fromisoformat on every such value and refuse what fromisoformat refuses."""
    import random
    from datetime import datetime, timedelta, timezone

    from logpipe.query.datemath import epoch_ms
    from logpipe.store.sqlite.writer import timestamp_ms

    rng = random.Random(5)
    start = datetime(1, 1, 1, tzinfo=timezone.utc)
    for _ in range(20000):
        moment = start + timedelta(milliseconds=rng.randrange(315_537_897_600_000))
        text = f"{moment.year:04d}" + moment.strftime("-%m-%dT%H:%M:%S.") + \
            f"{moment.microsecond // 1000:03d}Z"
        assert timestamp_ms(text) == epoch_ms(datetime.fromisoformat(text)), text
    for bad in ("2023-02-29T00:00:00.000Z", "2026-05-15T24:00:00.000Z",
                "2026-05-15T00:60:00.000Z", "2026-05-15T0+:00:00.000Z",
                "2026-13-01T00:00:00.000Z", "2026-05-15T00:00:60.000Z",
                "2026-05-15T00:00:00.0+1Z",
                "2026-05-15T00:00+00.000Z"):
        with pytest.raises(ValueError):
            timestamp_ms(bad)


def test_a_full_text_search_on_a_caught_up_store_does_not_wait_for_the_write_lock(tmp_path):
    """The refresh before a full-text search reads the mark first: when every row is indexed
    (rows are indexed as written), it takes no write transaction, so a search never queues
    behind a worker's write to learn there is nothing to do."""
    path = str(tmp_path / "events.db")
    sink = SqliteStore("sqlite:///" + path + "?timeout=0.2")
    sink.write([ev(i, message=f"user unknown number {i}") for i in range(20)])
    statements: list[str] = []
    sink.db.connection().set_trace_callback(statements.append)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # a worker in the middle of a write
    try:
        assert store_search(sink, SearchRequest(query='"user unknown"')).total == 20
        assert sink.count(SearchRequest(query="number")) == 20
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not any("BEGIN IMMEDIATE" in s for s in statements), statements
    sink.close()


def test_full_text_pages_and_totals_equal_a_plain_reading(tmp_path, monkeypatch):
    """Full-text queries take other plans past TRACK_TOTAL_HITS (the total counted along the
    full-text index up to the cap, the page found by walking the time index a span at a time
    with the full-text index read only over the span's rowids; the words of a conjunction as one
    FTS5 expression): the same events in the same order as reading every event in Python, with
    times out of rowid order, several spans needed, and after retention."""
    import random
    from logpipe.store.sqlite import paging as R

    rnd = random.Random(7)
    texts = ["User unknown", "unknown user here", "deferred refused", "refused, deferred later",
             "user known", "Deferred: connection refused by peer", "mail deferred for now"]
    events, base = [], 1_764_324_000
    for i in range(3000):
        # mostly in time order, some far out of it (a backfill)
        second = i * 3 if i % 17 else rnd.randrange(0, 9000)
        events.append(Event(f"e{i:05d}", {
            "@timestamp": datetime.fromtimestamp(base + second, timezone.utc).isoformat(),
            "message": f"{rnd.choice(texts)} n{i}", "host": f"mail{i % 3}", "type": "mail"}))
    path = str(tmp_path / "events.db")
    sink = SqliteStore("sqlite:///" + path)
    for k in range(0, len(events), 500):
        sink.write(events[k:k + 500])
    order = {e.id: k for k, e in enumerate(events)}   # rowids follow the write order

    def words(e):
        return e.doc["message"].lower().replace(",", " ").replace(":", " ").split()

    def phrase(e, a, b):
        w = words(e)
        return any(w[k:k + 2] == [a, b] for k in range(len(w) - 1))

    oracle = {
        '"User unknown"': lambda e: phrase(e, "user", "unknown"),
        "deferred refused": lambda e: {"deferred", "refused"} <= set(words(e)),
        '"User unknown" AND host:mail1': lambda e: phrase(e, "user", "unknown")
        and e.doc["host"] == "mail1",
        "unkn*": lambda e: any(w.startswith("unkn") for w in words(e)),
        "*fused AND defer*": lambda e: any(w.endswith("fused") for w in words(e))
        and any(w.startswith("defer") for w in words(e)),
        "deferred AND NOT refused": lambda e: "deferred" in words(e)
        and "refused" not in words(e),
    }
    monkeypatch.setattr(R, "TRACK_TOTAL_HITS", 100)
    monkeypatch.setattr(R, "_WALK_ROWS", 50)    # the first span holds too few: more spans

    def check(alive):
        for query, match in oracle.items():
            hits = [e for e in alive if match(e)]
            hits.sort(key=lambda e: (e.doc["@timestamp"], order[e.id]), reverse=True)
            expected = [e.id for e in hits]
            assert len(expected) > 100, query
            request = SearchRequest(query=query, limit=30)
            page = sink.search_page(request)
            assert (page.total, page.total_relation) == (100, "gte"), query
            assert [e["_id"] for e in page.hits] == expected[:30], query
            second = sink.search_page(request, page.next, with_total=False)
            assert [e["_id"] for e in second.hits] == expected[30:60], query
            assert sink.count(request) == len(expected), query
            assert [e["_id"] for e in sink.stream(SearchRequest(query=query, limit=None))] \
                == expected, query

    check(events)
    cutoff = datetime.fromtimestamp(base + 1500, timezone.utc)
    sink.prune(cutoff)
    check([e for e in events if datetime.fromisoformat(e.doc["@timestamp"]) >= cutoff])
    sink.close()
