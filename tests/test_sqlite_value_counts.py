"""The embedded store's per-field value counts (store.sqlite.value_counts): top values over all
events read from them equal top values counted the old ways (the documents, the value index),
through catch-up, a tail above the mark, retention, more writes, old stores and dropped
indexes. Real SQLite files."""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timezone

import pytest

from logpipe.store.base import Event, SearchRequest
from logpipe.store.sqlite import SqliteStore, value_counts
from logpipe.store.sqlite import aggregations as R
from logpipe.store.sqlite.schema import json_index_name, json_value_sql

FIELDS = ("relay", "nrcpts", "stat")   # free-form, typed (long: malformed values), few values
SIZES = (1, 2, 3, 5, 10, 40, 1000)
T0 = 1_764_324_000  # 2025-11-28T10:00:00Z


def _value(rng: random.Random):
    """A value as logs give them: strings (ties, a few very common), numbers vs the same digits
    as text, lists (with repeats, nested lists and objects, nulls), null, booleans, objects."""
    pick = rng.random()
    if pick < 0.45:
        return rng.choice(["mx1", "mx2", "mx3", "b", "a", "Z", "é", "10", "2", "mx1", "mx1"])
    if pick < 0.6:
        return rng.choice([10, 2, 7, -1, 2.5, 0, 1e20])
    if pick < 0.75:
        return [rng.choice(["mx1", "a", 2, "2", None, [1], {"k": "a"}, "b", True])
                for _ in range(rng.randrange(0, 4))]
    if pick < 0.8:
        return rng.choice([None, True, False, {"k": "mx1", "n": 2}, {}, []])
    return f"v{rng.randrange(60)}"   # a long tail of rarer values


def _nrcpts(rng: random.Random):
    # a long field: numbers, numbers as text, malformed text (kept out of every path)
    return rng.choice([1, 1, 2, 3, "4", "abc", "many", 1.5, None, [1, 2, 2]])


def events(start: int, n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        doc = {"@timestamp": datetime.fromtimestamp(T0 + (i * 37) % 20_000,
                                                    timezone.utc).isoformat(),
               "message": f"m{i}", "host": f"mail{i % 3}", "type": "mail", "program": "sendmail"}
        if rng.random() < 0.85:
            doc["relay"] = _value(rng)
        if rng.random() < 0.7:
            doc["nrcpts"] = _nrcpts(rng)
        if rng.random() < 0.9:
            doc["stat"] = rng.choice(["Sent", "Deferred", "Sent", 250, "250"])
        out.append(Event(f"e{i}", doc))
    return out


@pytest.fixture
def spy(monkeypatch):
    """How many tops the counts served (counted_top not None) and how many they could not."""
    served = {"counts": 0, "fallback": 0}
    real = value_counts.counted_top

    def counted_top(*args):
        out = real(*args)
        served["counts" if out is not None else "fallback"] += 1
        return out

    monkeypatch.setattr(R.value_counts, "counted_top", counted_top)
    return served


def expected_top(plain: SqliteStore, field: str, size: int) -> list:
    """Top values read from the documents (json_each), on a store with no value index."""
    return plain.top(SearchRequest(query="*"), field, size)


def check(sink: SqliteStore, plain: SqliteStore, served: dict | None = None,
          expect_counts: bool = True) -> None:
    before = dict(served) if served is not None else None
    for field in FIELDS:
        for size in SIZES:
            want = expected_top(plain, field, size)
            assert sink.top(SearchRequest(query="*"), field, size) == want, (field, size)
            assert sink.top(SearchRequest(), field, size) == want, (field, size)
            # the index's own ways, counts aside
            assert _top_over_index(sink, field, size) == want, (field, size)
    if served is not None and before is not None:
        used = served["counts"] - before["counts"]
        assert (used == 2 * len(FIELDS) * len(SIZES)) if expect_counts else used == 0, served


def _top_over_index(sink: SqliteStore, field: str, size: int) -> list:
    sink.aggregations._top_by_counts = lambda *a: None  # type: ignore[method-assign]
    try:
        return sink.top(SearchRequest(query="*"), field, size)
    finally:
        del sink.aggregations._top_by_counts


def both(tmp_path, batch: list[Event]) -> tuple[SqliteStore, SqliteStore]:
    sink = SqliteStore("sqlite:///" + str(tmp_path / "counted.db"))
    plain = SqliteStore("sqlite:///" + str(tmp_path / "plain.db"))
    sink.write(batch)
    plain.write(batch)
    return sink, plain


def write(sinks, batch: list[Event]) -> None:
    for s in sinks:
        s.write(batch)


def prune(sinks, before: datetime) -> int:
    removed = [s.prune(before) for s in sinks]
    assert removed[0] == removed[1]
    return removed[0]


def stored_counts(path: str, field: str) -> dict:
    db = sqlite3.connect(path)
    try:
        return {v: n for v, n in db.execute("SELECT value, n FROM value_counts WHERE field = ?",
                                            (field,))}
    finally:
        db.close()


def recounted(path: str, field: str, upto: int) -> dict:
    """The field's counts recomputed from the documents of the rows up to ``upto``."""
    db = sqlite3.connect(path)
    try:
        return {v: n for v, n in db.execute(
            "SELECT j.value, count(DISTINCT events.rowid) FROM events, json_each(events.doc, ?) "
            "AS j WHERE events.rowid <= ? AND j.type NOT IN ('null', 'object', 'array') "
            "GROUP BY j.value", ('$."' + field + '"', upto))}
    finally:
        db.close()


def mark(path: str) -> int:
    db = sqlite3.connect(path)
    try:
        row = db.execute(value_counts.MARK_SQL).fetchone()
        return row[0] if row else 0
    finally:
        db.close()


def consistent(sink: SqliteStore) -> None:
    """Every counted field's stored counts are exactly the recount of the rows up to the mark,
    with no value at zero."""
    upto = mark(sink.path)
    for field in FIELDS:
        got = stored_counts(sink.path, field)
        assert got == recounted(sink.path, field, upto), field
        assert all(n > 0 for n in got.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_top_from_the_counts_equals_counting_the_events(tmp_path, monkeypatch, spy, seed):
    """Randomized stores (scalars, lists, numbers vs text, ties at the cut, malformed values):
    top over everything from the counts equals top from the documents and from the value
    index, before and after the catch-up, with a tail above the mark, after retention and more
    writes."""
    sink, plain = both(tmp_path, events(0, 600, seed))
    sinks = (sink, plain)
    check(sink, plain, spy, expect_counts=False)      # no index yet: the documents
    assert sorted(sink.promote(list(FIELDS))) == sorted(FIELDS)
    consistent(sink)
    assert mark(sink.path) == 600   # the first counted field counts every row
    check(sink, plain, spy)
    write(sinks, events(500, 300, seed + 100))        # 100 repeats, 200 new rows: the tail
    check(sink, plain, spy)
    # 50 rows a step for 3 fields, each counted per dim too (few values)
    monkeypatch.setattr(value_counts, "STEP_CELLS", 150 * value_counts.DIM_CELLS)
    monkeypatch.setattr(value_counts, "MIN_STEP_ROWS", 1)
    assert sink.count_values(steps=1) == 50
    consistent(sink)
    check(sink, plain, spy)
    assert prune(sinks, datetime.fromtimestamp(T0 + 6_000, timezone.utc)) > 0  # some counted,
    consistent(sink)                                                            # some in the tail
    check(sink, plain, spy)
    while sink.maintain():
        pass
    assert mark(sink.path) == sink.reader._run("SELECT max(rowid) FROM events", [])[0][0]
    consistent(sink)
    check(sink, plain, spy)
    write(sinks, events(2000, 150, seed + 200))
    check(sink, plain, spy)
    assert prune(sinks, datetime.fromtimestamp(T0 + 30_000, timezone.utc)) > 0  # all of them
    consistent(sink)
    assert stored_counts(sink.path, "relay") == {}
    write(sinks, events(3000, 80, seed + 300))    # rowids above the clamped mark: the tail
    check(sink, plain, spy)
    assert sink.count_values() > 0
    consistent(sink)
    check(sink, plain, spy)
    sink.close()
    plain.close()


def test_a_long_tail_is_counted_over_the_index(tmp_path, monkeypatch, spy):
    sink, plain = both(tmp_path, events(0, 300, 7))
    sink.promote(list(FIELDS))
    write((sink, plain), events(300, 100, 8))
    monkeypatch.setattr(value_counts, "TAIL_ROWS", 99)
    check(sink, plain, spy, expect_counts=False)
    monkeypatch.setattr(value_counts, "TAIL_ROWS", 100)
    check(sink, plain, spy)
    sink.close()
    plain.close()


def test_the_answer_is_read_from_the_stored_counts(tmp_path):
    """Altering a stored count changes the answer (so the counts are what is read), and the
    consistency check sees the change; putting it back restores both."""
    sink, plain = both(tmp_path, events(0, 400, 11))
    sink.promote(["relay"])
    want = expected_top(plain, "relay", 3)
    assert sink.top(SearchRequest(), "relay", 3) == want
    db = sqlite3.connect(sink.path)
    with db:
        db.execute("UPDATE value_counts SET n = n + 1000 WHERE field = 'relay' AND value = 'Z'")
    got = sink.top(SearchRequest(), "relay", 3)
    assert got[0][0] == "Z" and got[0][1] > 1000 and got[1:] == want[:2]
    assert stored_counts(sink.path, "relay") != recounted(sink.path, "relay", mark(sink.path))
    with db:
        db.execute("UPDATE value_counts SET n = n - 1000 WHERE field = 'relay' AND value = 'Z'")
    db.close()
    assert stored_counts(sink.path, "relay") == recounted(sink.path, "relay", mark(sink.path))
    assert sink.top(SearchRequest(), "relay", 3) == want
    # a query, or a time window, is not everything: counted over the index, unaffected
    assert sink.top(SearchRequest(query="host:mail1"), "relay", 3) \
        == plain.top(SearchRequest(query="host:mail1"), "relay", 3)
    window = SearchRequest(start=datetime.fromtimestamp(T0 + 5_000, timezone.utc))
    assert sink.top(window, "relay", 3) == plain.top(window, "relay", 3)
    sink.close()
    plain.close()


def test_the_top_k_reads_the_counts_index_in_elasticsearchs_order(tmp_path):
    sink, plain = both(tmp_path, events(0, 50, 12))
    sink.promote(["relay"])
    for sql in ("SELECT value, n FROM value_counts INDEXED BY value_counts_top WHERE "
                "field = ? AND n > 1 ORDER BY n DESC, value LIMIT ?",
                "SELECT value, n FROM value_counts WHERE field = ? AND n = 1 ORDER BY value "
                "LIMIT ?"):
        plan = " ".join(str(r) for r in sink.db.conn.execute("EXPLAIN QUERY PLAN " + sql,
                                                           ("relay", 3)))
        assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan
    tail = " ".join(str(r) for r in sink.db.conn.execute(
        "EXPLAIN QUERY PLAN SELECT 1 FROM events NOT INDEXED WHERE events.rowid > ?", (40,)))
    assert "INTEGER PRIMARY KEY" in tail, tail
    sink.close()
    plain.close()


def as_made_before(sink: SqliteStore, table: str, meta_keys: str) -> SqliteStore:
    """The store as a version without ``table`` left it (its meta keys LIKE ``meta_keys``
    gone too; no schema version recorded: such versions came before the numbered migrations),
    opened again."""
    sink.close()
    db = sqlite3.connect(sink.path)
    with db:
        db.execute(f"DROP TABLE {table}")
        db.execute("DELETE FROM meta WHERE key LIKE ?", (meta_keys,))
    db.execute("PRAGMA user_version = 0")
    db.close()
    return SqliteStore("sqlite:///" + sink.path)


def test_a_store_from_before_the_value_counts_gets_them_from_maintenance(tmp_path, spy):
    """An old store (value indexes, no value counts table): top counts over the index;
    maintenance adds the table and counts the fields already indexed, one at a time."""
    sink, plain = both(tmp_path, events(0, 300, 21))
    sink.promote(list(FIELDS))
    sink = as_made_before(sink, "value_counts", "value_count%")
    check(sink, plain, spy, expect_counts=False)
    assert not value_counts.has_table(sink.db.connection()) and sink.uncounted_fields() == []
    assert [sink.maintain() for _ in range(5)] == [300, 1, 1, 1, 0]  # per-hour counts first
    assert value_counts.counted_fields(sink.db.connection()) == sorted(FIELDS)
    consistent(sink)
    check(sink, plain, spy)
    sink.close()
    plain.close()


def test_logpipe_maintain_counts_the_indexed_fields_of_an_old_store(tmp_path, monkeypatch,
                                                                    capsys, spy):
    from logpipe.common.cli import main

    sink, plain = both(tmp_path, events(0, 120, 22))
    sink.promote(["relay"])
    sink.close()
    db = sqlite3.connect(sink.path)
    with db:
        db.execute("DROP TABLE value_counts")
        db.execute("DELETE FROM meta WHERE key LIKE 'value_count%'")
    db.execute("PRAGMA user_version = 0")  # (made before the numbered migrations)
    db.close()
    monkeypatch.setenv("LOGPIPE_STORE_URL", "sqlite:///" + sink.path)
    assert main(["maintain"]) == 0
    assert "value indexes built: none needed" in capsys.readouterr().out
    sink = SqliteStore("sqlite:///" + sink.path)
    assert stored_counts(sink.path, "relay") == recounted(sink.path, "relay", 120)
    assert sink.top(SearchRequest(), "relay", 7) == expected_top(plain, "relay", 7)
    assert spy["counts"] == 1
    sink.close()
    plain.close()


def test_a_dropped_or_replaced_index_leaves_no_counts_behind(tmp_path, spy):
    sink, plain = both(tmp_path, events(0, 200, 31))
    sink.promote(["relay", "stat"])
    assert stored_counts(sink.path, "relay") and stored_counts(sink.path, "stat")
    sink.db.conn.execute(f"DROP INDEX {json_index_name('stat')}")
    write((sink, plain), events(200, 10, 32))
    while sink.maintain():
        pass
    assert stored_counts(sink.path, "stat") == {}
    assert value_counts.counted_fields(sink.db.conn) == ["relay"]
    assert {r[0] for r in sink.db.conn.execute("SELECT DISTINCT field FROM value_dim_counts")} \
        == {"relay"} and value_counts.dims_state(sink.db.conn, "stat") is None
    for size in SIZES:
        assert sink.top(SearchRequest(), "stat", size) == expected_top(plain, "stat", size)
        assert sink.top(SearchRequest(), "relay", size) == expected_top(plain, "relay", size)
    # an index of the layout before v2: maintenance replaces it, and counts the field
    old = json_index_name("stat", "1")
    sink.db.conn.execute(f"CREATE INDEX {old} ON events({json_value_sql('stat')}, ts)")
    assert sink.wanted_fields() == ["stat"]
    while sink.maintain():
        pass
    assert value_counts.counted_fields(sink.db.conn) == ["relay", "stat"]
    consistent_fields = {f: stored_counts(sink.path, f) for f in ("relay", "stat")}
    for f, got in consistent_fields.items():
        assert got == recounted(sink.path, f, mark(sink.path))
    before = spy["counts"]
    for size in SIZES:
        assert sink.top(SearchRequest(), "stat", size) == expected_top(plain, "stat", size)
    assert spy["counts"] - before == len(SIZES)
    sink.close()
    plain.close()


def test_busy_maintenance_counts_values_in_short_steps(tmp_path, monkeypatch):
    """maintain(busy=True) moves the value counts on too (a bounded step), after the per-hour
    counts."""
    sink, plain = both(tmp_path, events(0, 100, 41))
    sink.promote(["relay"])
    write((sink, plain), events(100, 300, 42))
    monkeypatch.setattr(value_counts, "STEP_CELLS", 120 * value_counts.DIM_CELLS)  # (per dim)
    monkeypatch.setattr(value_counts, "MIN_STEP_ROWS", 1)
    marks = []
    while sink.maintain(busy=True):
        marks.append(mark(sink.path))
    assert marks == [220, 340, 400]    # 120 rows a step (one field)
    assert stored_counts(sink.path, "relay") == recounted(sink.path, "relay", 400)
    sink.close()
    plain.close()


def test_retention_clamps_the_mark_so_reused_rowids_are_counted(tmp_path, monkeypatch, spy):
    """With the full text deferred, a store pruned empty hands out rowids from low again: the
    mark comes down with the last row, so those rows are counted (the tail, then the
    catch-up), never taken as counted already."""
    from logpipe.store.sqlite import writer as W

    monkeypatch.setattr(W, "_REFRESH_S", 1e9)
    sink = SqliteStore("sqlite:///" + str(tmp_path / "counted.db") + "?fts=deferred")
    plain = SqliteStore("sqlite:///" + str(tmp_path / "plain.db"))
    write((sink, plain), events(0, 200, 51))
    sink.promote(list(FIELDS))
    assert mark(sink.path) == 200
    assert prune((sink, plain), datetime.fromtimestamp(T0 + 30_000, timezone.utc)) == 200
    assert mark(sink.path) == 0
    write((sink, plain), events(500, 60, 52))
    assert sink.reader._run("SELECT max(rowid) FROM events", [])[0][0] < 200  # rowids again
    check(sink, plain, spy)
    assert sink.count_values() == 60
    consistent(sink)
    check(sink, plain, spy)
    sink.close()
    plain.close()


def test_logpipe_maintain_brings_the_value_counts_up_to_date(tmp_path, monkeypatch, capsys,
                                                               spy):
    from logpipe.common.cli import main

    sink, plain = both(tmp_path, events(0, 100, 61))
    sink.promote(["relay"])
    write((sink, plain), events(100, 40, 62))
    sink.close()
    monkeypatch.setenv("LOGPIPE_STORE_URL", "sqlite:///" + str(tmp_path / "counted.db"))
    assert main(["maintain", "--index", "stat"]) == 0
    out = capsys.readouterr().out
    assert "value counts: 40 events counted" in out, out
    sink = SqliteStore("sqlite:///" + str(tmp_path / "counted.db"))
    assert mark(sink.path) == 140
    assert value_counts.counted_fields(sink.db.connection()) == ["relay", "stat"]
    for field in ("relay", "stat"):
        assert stored_counts(sink.path, field) == recounted(sink.path, field, 140)
        assert sink.top(SearchRequest(), field, 5) == expected_top(plain, field, 5)
    assert spy["counts"] == 2
    sink.close()
    plain.close()


def test_a_field_indexed_later_is_counted_up_to_the_mark_then_caught_up(tmp_path, spy):
    """A field promoted while the mark is behind the last row: counted up to the mark at once,
    above it by the catch-up with the others (never twice)."""
    sink, plain = both(tmp_path, events(0, 300, 71))
    assert sink.promote(["relay"]) == ["relay"]
    assert mark(sink.path) == 300
    write((sink, plain), events(300, 200, 72))
    assert sorted(sink.promote(["nrcpts", "stat"])) == ["nrcpts", "stat"]
    assert mark(sink.path) == 300
    consistent(sink)
    check(sink, plain, spy)
    while sink.maintain():
        pass
    assert mark(sink.path) == 500
    consistent(sink)
    check(sink, plain, spy)
    sink.close()
    plain.close()


# --- top values under one term on host, type or program, from the counts per dim ---

DIM_FIELDS = ("stat", "nrcpts", "relay", "code", "mixed", "msg_id", "tagged")
DIM_QUERIES = ("host:mail0", "host:10", "host:nothere", "type:mail", "type:syslog",
               "program:sendmail", "program:postfix", "program:10")
DIM_SIZES = (1, 3, 10, 40)


def dim_events(start: int, n: int, seed: int, spread: bool = False,
               lists: bool = False) -> list[Event]:
    """Events with varied promoted columns (a missing host, a host that is a number and one
    that is the same digits as text, a number-like program) and fields of few values (stat,
    nrcpts, code, mixed: with lists), of many (relay, with lists; msg_id, tagged: mostly one
    event each, no list). ``spread``: code and mixed take many new values (they cross
    DIM_DISTINCT_MAX); ``lists``: tagged gets lists and objects."""
    rng = random.Random(seed)
    out = events(start, n, seed)
    for i, ev in enumerate(out, start):
        doc = ev.doc
        doc["host"] = rng.choice(["mail0", "mail0", "mail1", "10", 10, None, "relay"])
        if doc["host"] is None:
            del doc["host"]
        doc["type"] = rng.choice(["mail", "mail", "syslog"])
        doc["program"] = rng.choice(["sendmail", "sendmail", "postfix", "10", 10])
        if rng.random() < 0.8:
            doc["code"] = (f"c{i}" if spread and rng.random() < 0.5
                           else rng.choice(["a", "b", "b", 5, "5", "x"]))
        if rng.random() < 0.6:
            doc["mixed"] = (f"m{i}" if spread and rng.random() < 0.5
                            else rng.choice(["p", "q", ["p", "r", "p"], 4, {"p": 1}]))
        if rng.random() < 0.9:
            doc["msg_id"] = (f"id{i}" if rng.random() < 0.6
                             else rng.choice([f"id{rng.randrange(40)}", rng.randrange(20), 2.5]))
        if rng.random() < 0.7:
            doc["tagged"] = (rng.choice([["t1", "t2", "t1"], {"k": 1}, ["z", 3]])
                             if lists and rng.random() < 0.3 else f"t{rng.randrange(400)}")
    return out


def check_dims(sink: SqliteStore, plain: SqliteStore, served: dict | None = None,
               counted: tuple = ()) -> None:
    """Top under each term equals top from the documents (a store with no value index) and
    from the index's own ways; the ``counted`` fields are served by their counts."""
    for query in DIM_QUERIES:
        for field in DIM_FIELDS:
            for size in DIM_SIZES:
                request = SearchRequest(query=query)
                want = plain.top(request, field, size)
                before = dict(served) if served is not None else None
                assert sink.top(request, field, size) == want, (query, field, size)
                if served is not None and before is not None:
                    used = served["counts"] - before["counts"]
                    assert used == (field in counted), (query, field, size, served)
                sink.aggregations._top_by_counts = lambda *a: None  # type: ignore[method-assign]
                try:
                    assert sink.top(request, field, size) == want, (query, field, size)
                finally:
                    del sink.aggregations._top_by_counts


def states(sink: SqliteStore) -> dict:
    conn = sink.db.connection()
    return {f: value_counts.dims_state(conn, f) for f in value_counts.counted_fields(conn)}


def dims_consistent(sink: SqliteStore) -> None:
    """The dims rows of every field counted per dim are exactly the recount of the rows up to
    the mark: every value (ALL) or those of more than one event (HEAVY), and the SUM rows;
    none for the other fields."""
    upto = mark(sink.path)
    db = sqlite3.connect(sink.path)
    try:
        for field, state in states(sink).items():
            got = {(d, dv, v): n for d, dv, v, n in db.execute(
                "SELECT dim, dimval, value, n FROM value_dim_counts WHERE field = ?", (field,))}
            if state not in (value_counts.ALL, value_counts.HEAVY):
                assert got == {}, field
                continue
            total = recounted(sink.path, field, upto)
            want: dict = {}
            for dim in ("host", "type", "program"):
                for dv, v, n in db.execute(
                        f"SELECT events.{dim}, j.value, count(DISTINCT events.rowid) FROM events, "
                        f"json_each(events.doc, ?) AS j WHERE events.rowid <= ? AND events.{dim} "
                        f"IS NOT NULL AND j.type NOT IN ('null', 'object', 'array') "
                        f"GROUP BY 1, 2", ('$."' + field + '"', upto)):
                    want[(dim, dv, value_counts.SUM)] = want.get((dim, dv, value_counts.SUM),
                                                                 0) + n
                    if state == value_counts.ALL or total[v] > 1:
                        want[(dim, dv, v)] = n
            assert got == want, field
            assert all(n > 0 for n in got.values()), field
    finally:
        db.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_top_under_a_term_from_the_counts_equals_counting_the_events(tmp_path, monkeypatch,
                                                                       spy, seed):
    """Randomized stores: top of a field under one term on host, type or program read from the
    counts per dim (every value of a field of few values; the values of several events of a
    field of many, its values of one event walked) equals top from the documents and over the
    index, through a tail, catch-up steps, retention, more writes, a field crossing
    DIM_DISTINCT_MAX (no lists: it keeps the values of several events) and a field of many
    values getting lists (its dims rows go, its tops are counted over the index)."""
    monkeypatch.setattr(value_counts, "DIM_DISTINCT_MAX", 40)
    sink, plain = both(tmp_path, dim_events(0, 600, seed))
    sinks = (sink, plain)
    check_dims(sink, plain, spy)                                 # no index yet
    assert sorted(sink.promote(list(DIM_FIELDS))) == sorted(DIM_FIELDS)
    A, H, N = value_counts.ALL, value_counts.HEAVY, value_counts.NONE
    assert states(sink) == {"stat": A, "nrcpts": A, "code": A, "mixed": A, "relay": N,
                            "msg_id": H, "tagged": H}
    dims_consistent(sink)
    by_dims = ("stat", "nrcpts", "code", "mixed", "msg_id", "tagged")
    check_dims(sink, plain, spy, by_dims)
    write(sinks, dim_events(500, 300, seed + 100))   # 100 repeats, 200 new rows: the tail
    check_dims(sink, plain, spy, by_dims)
    # 50 rows a step for 7 fields, 6 of them counted per dim
    monkeypatch.setattr(value_counts, "STEP_CELLS", 50 * (1 + 6 * value_counts.DIM_CELLS))
    monkeypatch.setattr(value_counts, "MIN_STEP_ROWS", 1)
    assert sink.count_values(steps=1) == 50
    dims_consistent(sink)
    check_dims(sink, plain, spy, by_dims)
    assert prune(sinks, datetime.fromtimestamp(T0 + 6_000, timezone.utc)) > 0
    dims_consistent(sink)
    check_dims(sink, plain, spy, by_dims)
    while sink.maintain():
        pass
    dims_consistent(sink)
    check_dims(sink, plain, spy, by_dims)
    # code crosses DIM_DISTINCT_MAX (no lists: values of several events only), mixed too (it
    # has lists: no dims rows); tagged gets lists (no dims rows: counted over the index)
    write(sinks, dim_events(2000, 300, seed + 200, spread=True, lists=True))
    check_dims(sink, plain, spy, by_dims)                    # (the tail: decided when counted)
    while sink.maintain():
        pass
    assert states(sink) == {"stat": A, "nrcpts": A, "code": H, "mixed": N, "relay": N,
                            "msg_id": H, "tagged": N}
    dims_consistent(sink)
    by_dims = ("stat", "nrcpts", "code", "msg_id")
    check_dims(sink, plain, spy, by_dims)
    assert prune(sinks, datetime.fromtimestamp(T0 + 12_000, timezone.utc)) > 0
    dims_consistent(sink)
    check_dims(sink, plain, spy, by_dims)
    assert prune(sinks, datetime.fromtimestamp(T0 + 30_000, timezone.utc)) > 0  # all of them
    dims_consistent(sink)
    write(sinks, dim_events(3000, 120, seed + 300))   # rowids above the clamped mark: the tail
    check_dims(sink, plain, spy, by_dims)
    assert sink.count_values() > 0
    dims_consistent(sink)
    check_dims(sink, plain, spy, by_dims)
    sink.close()
    plain.close()


def test_a_store_counted_before_the_dims_gets_them_from_maintenance(tmp_path, spy):
    """A store made with value counts but no dims (no value_dim_counts table, no decision):
    tops under a term are counted over the index; maintenance adds the table and decides and
    counts each field, one at a time."""
    sink, plain = both(tmp_path, dim_events(0, 400, 5))
    sink.promote(list(DIM_FIELDS))
    sink = as_made_before(sink, "value_dim_counts", "value_counts_dims:%")
    check_dims(sink, plain, spy)
    assert not value_counts.has_dim_table(sink.db.connection())
    done = []
    while True:
        done.append(sink.maintain())
        if not done[-1]:
            break
    assert done == [400] + [1] * len(DIM_FIELDS) + [0]   # per-hour counts, then a field at a time
    assert set(states(sink).values()) <= {value_counts.ALL, value_counts.HEAVY,
                                          value_counts.NONE}
    assert states(sink)["stat"] == value_counts.ALL
    assert states(sink)["msg_id"] == value_counts.ALL   # (400 events: under 1,000 values)
    dims_consistent(sink)
    check_dims(sink, plain, spy, DIM_FIELDS)
    sink.close()
    plain.close()


def test_the_answer_under_a_term_is_read_from_the_stored_counts(tmp_path, monkeypatch):
    """Altering a stored dims row changes the answer (ALL: a value's count; HEAVY: the count
    of a value of several events), so the counts are what is read; a time window is not
    served by them."""
    monkeypatch.setattr(value_counts, "DIM_DISTINCT_MAX", 40)
    sink, plain = both(tmp_path, dim_events(0, 500, 13))
    sink.promote(["stat", "msg_id"])
    assert states(sink) == {"stat": value_counts.ALL, "msg_id": value_counts.HEAVY}
    request = SearchRequest(query="host:mail0")
    for field in ("stat", "msg_id"):
        want = plain.top(request, field, 3)
        assert sink.top(request, field, 3) == want
        # a value of several events below the first, text (keys are text: not number-like)
        last, n = [(v, n) for v, n in plain.top(request, field, 40)[1:]
                   if n > 1 and not v.lstrip("-").replace(".", "").isdigit()][-1]
        db = sqlite3.connect(sink.path)
        with db:
            assert db.execute("UPDATE value_dim_counts SET n = n + 1000 WHERE field = ? AND "
                              "dim = 'host' AND dimval = 'mail0' AND value = ?",
                              (field, last)).rowcount == 1
        got = sink.top(request, field, 3)
        assert got == [(last, n + 1000)] + [(v, c) for v, c in want if v != last][:2], \
            (field, got)
        with db:
            db.execute("UPDATE value_dim_counts SET n = n - 1000 WHERE field = ? AND "
                       "dim = 'host' AND dimval = 'mail0' AND value = ?", (field, last))
        db.close()
        assert sink.top(request, field, 3) == want
        window = SearchRequest(query="host:mail0",
                               start=datetime.fromtimestamp(T0 + 5_000, timezone.utc))
        assert sink.top(window, field, 3) == plain.top(window, field, 3)
    # HEAVY: the SUM row says how many values of one event match; with none left, none is
    # looked for (the top of size 1000 holds only the values of several events)
    db = sqlite3.connect(sink.path)
    with db:
        db.execute("UPDATE value_dim_counts SET n = (SELECT sum(n) FROM value_dim_counts "
                   "AS d WHERE d.field = 'msg_id' AND d.dim = 'host' AND d.dimval = 'mail0' AND "
                   "d.value <> x'') WHERE field = 'msg_id' AND dim = 'host' AND "
                   "dimval = 'mail0' AND value = x''")
    db.close()
    several = {v for v, n in plain.top(SearchRequest(), "msg_id", 10_000) if n > 1}
    full = plain.top(request, "msg_id", 1000)
    assert sink.top(request, "msg_id", 1000) == [(v, n) for v, n in full if v in several] \
        != full
    sink.close()
    plain.close()


def test_a_dense_query_on_a_field_of_many_values_is_not_walked_value_by_value(tmp_path,
                                                                               monkeypatch):
    """Top values under a query the counts do not serve (here a wildcard) of a counted field
    with more distinct values than the value-by-value walk takes: the counts say so, the walk
    is skipped (it would repeat the query's work per value), and the answer is the documents'."""
    batch = events(0, 600, seed=11)
    sink, plain = both(tmp_path, batch)
    sink.promote(list(FIELDS))
    monkeypatch.setattr(R, "_TOP_BY_FIELD_INDEX", 0)   # every query counts as dense
    monkeypatch.setattr(R, "_TOP_DISTINCT_WALK", 5)    # relay has more values than this
    walked = []
    real = R.SqliteAggregations._top_by_values
    monkeypatch.setattr(R.SqliteAggregations, "_top_by_values",
                        lambda self, field, *a: walked.append(field) or real(self, field, *a))
    for query in ("host:mail*", "stat:Sent OR stat:Deferred", "NOT host:mail1"):
        for field in FIELDS:
            want = plain.top(SearchRequest(query=query), field, 10)
            assert sink.top(SearchRequest(query=query), field, 10) == want, (query, field)
    many = {f for f in FIELDS if len(stored_counts(str(tmp_path / "counted.db"), f)) > 5}
    assert "relay" in many and walked and not set(walked) & many, walked
    sink.close()
    plain.close()


@pytest.mark.parametrize("seed", [3, 4])
def test_top_under_any_dense_query_of_a_heavy_field_equals_counting_the_events(tmp_path,
                                                                               monkeypatch,
                                                                               seed):
    """A field of many values nearly all of one event each (HEAVY): top values under any query
    that matches many events count only its values of several events (and the tail's) under
    the query, then walk its values of one event in value order; the same answer as reading
    the documents, with a tail, after catch-up and retention, and for queries that match few
    of its events (the walk gives up: the index's way)."""
    monkeypatch.setattr(value_counts, "DIM_DISTINCT_MAX", 40)
    monkeypatch.setattr(value_counts, "SINGLE_WALK", 300)
    monkeypatch.setattr(R, "_TOP_BY_FIELD_INDEX", 0)     # every query counts as dense
    batch = dim_events(0, 1500, seed)
    sink, plain = both(tmp_path, batch)
    sink.promote(["msg_id", "stat", "relay"])
    while sink.maintain():
        pass
    assert states(sink)["msg_id"] == value_counts.HEAVY
    served = []
    real = value_counts.top_under_query
    monkeypatch.setattr(R.value_counts, "top_under_query",
                        lambda *a: served.append(real(*a) is not None) or real(*a))
    queries = ("stat:Sent", "NOT stat:Deferred", "host:mail* OR program:postfix", "nrcpts:[2 TO *]",
               "code:b AND NOT type:syslog", "_exists_:relay", "stat:S* AND host:mail0")

    def same():
        for query in queries:
            for size in (1, 3, 10, 50):
                want = plain.top(SearchRequest(query=query), "msg_id", size)
                assert sink.top(SearchRequest(query=query), "msg_id", size) == want, (query, size)

    same()
    assert any(served) and not all(served), served    # served, and fell back for some
    # a tail above the mark, some of it with values of one stored event (now of two)
    tail = dim_events(1500, 300, seed + 10)
    for k, ev in enumerate(tail[::3]):
        ev.doc["msg_id"] = batch[(k * 7) % len(batch)].doc.get("msg_id", "id3")
    write((sink, plain), tail)
    same()
    while sink.maintain():
        pass
    prune((sink, plain), datetime.fromtimestamp(T0 + 5000, timezone.utc))
    same()
    sink.close()
    plain.close()
