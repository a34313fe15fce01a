"""The embedded store's reader: search, keyset pages, histogram, top values, count. The query's
translation to SQL is :mod:`store.sqlite.translate`'s.

Histograms of queries that an index serves in time order (everything, host/program/qid values,
time ranges) count each bucket over an index range instead of sorting every matching row; those
of everything or of one host, type or program in whole hours read the per-hour counts
(:mod:`store.sqlite.rollup`).

A page's total is counted up to TRACK_TOTAL_HITS (as Elasticsearch does); a query with more
matches than that is dense enough that its newest page is found by walking the time index and
checking each event, where sorting every match would cost in proportion to the matches. Full-text
conditions take the full-text index's own ways: the words of a conjunction are one FTS5 expression
(the index intersects them), a capped total walks the index's matches and stops at the cap, and a
walk along the time index reads the full-text index only over the rowids of its span.

A search never writes: a field without a value index is read from the documents, and the wish
for an index is noted (one meta row, only when the write lock is free at once) for the store's
maintenance to build (:mod:`store.sqlite.maintenance`).

Reads do not queue behind one lock: each thread reads on a connection of its own (WAL lets
readers run side by side, and beside the writer), and every read statement runs under the
calling thread's :class:`store.budget.Budget`: a progress handler checks it every
PROGRESS_STEPS SQLite instructions and interrupts the statement when the budget is spent or
cancelled (then the budget's error is raised: "query too expensive: ..."). The connections are
:mod:`store.sqlite.database`'s.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Iterator


from logpipe.common.errors import QueryError, SinkError
from logpipe.query.datemath import MAX_BUCKETS, epoch_ms, fill_buckets, parse_interval
from logpipe.query.lucene import compile_query
from logpipe.query.tree import (
    TEXT_FIELD,
    TEXT_KEYWORD,
    All,
    And,
    Range,
    Term,
    Text,
    TextWildcard,
    TimeRange,
    Wildcard,
    numeric,
)
from logpipe.store.base import (
    TRACK_TOTAL_HITS,
    Page,
    SearchRequest,
    SearchResult,
    bucket_key,
    decode_cursor,
    encode_cursor,
)
from logpipe.query.tree import INT64_MAX, INT64_MIN
from logpipe.store.sqlite import functions, rollup, value_counts
from logpipe.store.sqlite.schema import (
    FTS_TABLE,
    JSON_INDEX_PREFIX,
    SQL_COLUMNS,
    WANTED_PREFIX,
    json_index_name,
    json_indexable,
    json_literal_path,
    json_value_sql,
    returned_doc,
)


from logpipe.store.sqlite.database import Database
from logpipe.store.sqlite.writer import SqliteWriter
from logpipe.store.sqlite.translate import (
    PART_HEAD,
    doc_field,
    fts_match_all,
    fts_membership,
    json_path,
    sql_query,
    value_fields,
)


class SqliteReader:
    """The reading part of the embedded store: search, keyset pages, histograms, top values,
    count, on the database's reading connections."""

    def __init__(self, db: Database, full_text: SqliteWriter):
        self.db = db
        self.full_text = full_text   # its refresh() indexes what a full-text search needs
        self._wanted_noted: set[str] = set()   # value-index wishes already recorded

    def _where(self, request: SearchRequest, also: tuple = (), documents: bool = False,
               q=None, rowids: tuple[int, int] | None = None) -> tuple[str, list]:
        """SQL for the request; ``also`` names more fields the caller reads values of (top);
        ``documents``: read JSON fields from the documents even where a value index exists
        (the form that checks one event cheaply, for a walk along the time index); ``q``: this
        compiled condition instead of the request's query (its window still applies);
        ``rowids``: see :func:`sql_query`."""
        if q is None:
            q = compile_query(request.query or "*")
        indexed = self._value_indexes(value_fields(q) | set(also))
        if documents:
            indexed = frozenset()
        params: list = []
        where = sql_query(q, params, indexed, rowids)
        if FTS_TABLE in where:  # bare words, phrases, message: (also the vocabulary)
            self.full_text.refresh()
        if request.start is not None:
            where += " AND events.ts >= ?"
            params.append(epoch_ms(request.start))
        if request.end is not None:
            where += " AND events.ts < ?"
            params.append(epoch_ms(request.end))
        return where, params

    def _value_indexes(self, fields) -> frozenset:
        """The fields among ``fields`` that have a value index. For the others the wish is
        noted (promotion by use) and the query reads the documents until maintenance has
        built the index: a search never builds one (that held every writer back for seconds)."""
        wanted = {f for f in fields if json_indexable(f)}
        if not wanted:
            return frozenset()
        names = self._index_names()
        have = {f for f in wanted if json_index_name(f) in names}
        if wanted - have:
            self._note_wanted(wanted - have)
        return frozenset(have)

    def _note_wanted(self, fields: set[str]) -> None:
        """Record that searches want value indexes on ``fields`` (meta rows WANTED_PREFIX +
        field) for maintenance to build. Never waits for the write lock: when another
        connection holds it, or the store is read-only, the wish is noted by a later search."""
        noted = self._wanted_noted
        new = sorted(fields - noted)
        if not new:
            return
        with self.db.lock:
            conn = self.db.connection()
            keys = [WANTED_PREFIX + f for f in new]
            present = {r[0] for r in conn.execute(
                f"SELECT key FROM meta WHERE key IN ({', '.join('?' * len(keys))})", keys)}
            todo = [k for k in keys if k not in present]
            try:
                if todo:
                    conn.execute("PRAGMA busy_timeout = 0")
                    conn.execute("INSERT INTO meta(key, value) VALUES "
                                 + ", ".join(["(?, strftime('%s', 'now'))"] * len(todo))
                                 + " ON CONFLICT(key) DO NOTHING", todo)
                noted.update(new)
            except sqlite3.Error:  # busy or read-only: not now
                pass
            finally:
                if todo:
                    conn.execute(f"PRAGMA busy_timeout = {int(self.db.timeout * 1000)}")

    def _run(self, sql: str, params: list):
        with self.db.reading() as conn:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                functions.raise_failure(exc)
                text = str(exc)
                if "fts5" in text or "syntax error" in text:
                    raise QueryError(f"the embedded store cannot run this query: {text}") \
                        from None
                if "interrupted" in text:
                    raise
                raise SinkError(f"embedded store {self.db.path}: {text}") from None

    def _on_value_index(self, request: SearchRequest) -> tuple[str, list] | None:
        """For a query that is one term, wildcard or range on a field with a value index (and
        no time window): the UNION ALL of its index-range parts (rowid, ts), disjoint, so that
        counting and ordering by time read only the index. None otherwise."""
        if request.start is not None or request.end is not None:
            return None
        q = compile_query(request.query or "*")
        if not isinstance(q, (Term, Wildcard, Range)) or q.field in SQL_COLUMNS \
                or q.field == "_id":
            return None
        indexed = self._value_indexes({doc_field(q.field)})
        if doc_field(q.field) not in indexed:
            return None
        params: list = []
        where = sql_query(q, params, indexed)
        head, tail = "events.rowid IN (", ")"
        if not (where.startswith(head) and where.endswith(tail)):
            return None
        parts = where[len(head):-len(tail)]
        return parts.replace(PART_HEAD, "SELECT rowid, ts FROM events INDEXED BY "), params

    def search(self, request: SearchRequest) -> SearchResult:
        if request.limit is None or request.limit >= TRACK_TOTAL_HITS:
            # as many events as the tracking limit or more: the exact total (as on
            # Elasticsearch, which streams past its result window and counts)
            return SearchResult(total=self.count(request), events=list(self.stream(request)))
        page = self.search_page(request)
        return SearchResult(total=page.total or 0, events=page.hits,
                            total_relation=page.total_relation)

    def _count_upto(self, request: SearchRequest, cap: int | None) -> int:
        """How many events match, counting no further than ``cap`` (None: all of them), from
        a value index alone when the query allows."""
        on_index = self._on_value_index(request)
        driven = None if on_index else _fts_driven(compile_query(request.query or "*"))
        if on_index is not None:
            rows, params = f"SELECT 1 FROM ({on_index[0]})", on_index[1]
        elif driven is not None:
            # along the full-text index's matches, each looked up by rowid: stops at the cap
            # (``rowid IN (matches)`` would collect every match first)
            params = []
            match = fts_match_all(driven[0], params)
            where, rest = self._where(request, q=driven[1])
            params += rest
            self.full_text.refresh()
            rows = (f"SELECT 1 FROM {FTS_TABLE} CROSS JOIN events WHERE {FTS_TABLE} MATCH "
                    f"{match} AND events.rowid = {FTS_TABLE}.rowid AND {where}")
        else:
            where, params = self._where(request)
            rows = f"SELECT 1 FROM events WHERE {where}"
        if cap is None:
            return self._run(f"SELECT count(*) FROM ({rows})", params)[0][0]
        return self._run(f"SELECT count(*) FROM ({rows} LIMIT ?)", params + [cap])[0][0]

    def _walk(self, request: SearchRequest, matches: int) -> tuple[SearchRequest, list] | None:
        """For a query with ``matches`` (counted up to past TRACK_TOTAL_HITS) that no index
        serves in time order: (the request, the window's bounds on ts) to check events along
        the time index, or None when sorting the matches is the better plan (few of them, or
        an index that orders them)."""
        if matches <= TRACK_TOTAL_HITS or _index_friendly(compile_query(request.query or "*")):
            return None
        window = [epoch_ms(request.start) if request.start is not None else INT64_MIN,
                  epoch_ms(request.end) - 1 if request.end is not None else INT64_MAX]
        return request, window

    def _keyset_rows(self, where: str, params: list, desc: bool,
                     after: tuple[int | None, int] | None, size: int,
                     walk: tuple[SearchRequest, list] | None = None) -> list:
        """The keyset primitive of :meth:`search_page` and :meth:`stream`: up to ``size`` rows
        (rowid, ts, id, doc) after the position ``after`` = (ts or None, rowid), ordered by
        (ts, rowid). No OFFSET: each page is an index seek. Events without a time come last
        newest-first and first oldest-first (SQLite sorts NULL lowest); the timed and the
        untimed part are queried apart so that each is one range of the ts index.
        ``walk`` (:meth:`_walk`): first look for the timed rows along the time index
        (:meth:`_walk_rows`), sorting the matches only when its spans do not hold enough."""
        order, cmp = ("DESC", "<") if desc else ("ASC", ">")
        parts: tuple[bool, ...] = (True, False) if desc else (False, True)
        if after is not None:
            # skip the parts wholly before the cursor's
            parts = parts[parts.index(after[0] is not None):]
        rows: list = []
        for timed in parts:
            if len(rows) >= size:
                break
            extra: list = []
            if timed:
                cond = "events.ts IS NOT NULL"
                if after is not None and after[0] is not None:
                    cond += f" AND (events.ts, events.rowid) {cmp} (?, ?)"
                    extra = [after[0], after[1]]
            else:
                cond = "events.ts IS NULL"
                if after is not None and after[0] is None:
                    cond += f" AND events.rowid {cmp} ?"
                    extra = [after[1]]
            need = size - len(rows)
            if timed and walk is not None:
                found = self._walk_rows(walk, cond, extra, order, need)
                if found is not None:
                    rows += found
                    after = None
                    continue
            rows += self._run(f"SELECT rowid, ts, id, doc FROM events WHERE rowid IN "
                              f"(SELECT events.rowid FROM events WHERE ({where}) AND {cond} "
                              f"ORDER BY events.ts {order}, events.rowid {order} LIMIT ?) "
                              f"ORDER BY ts {order}, rowid {order}",
                              params + extra + [need])
            after = None  # the next part starts at its beginning
        return rows

    def _walk_rows(self, walk: tuple[SearchRequest, list], cond: str, extra: list,
                   order: str, need: int) -> list | None:
        """The next ``need`` matches (rowid, ts, id, doc) in time order after ``cond``, found by
        checking the events along the time index a span at a time (each span 8x the last, up to
        _WALK_SPANS of them and _WALK_MAX_ROWS events); None when those spans do not hold
        enough (sorting the matches is then the better plan). A full-text condition reads only
        the span's rowid range of the full-text index, so a span costs what it holds, not what
        the whole query matches."""
        request, window = walk
        span = max(_WALK_ROWS, 100 * need)
        walked = (f"SELECT events.rowid AS r, events.ts AS t FROM events INDEXED BY events_ts "
                  f"WHERE {cond} AND events.ts >= ? AND events.ts <= ? ORDER BY events.ts "
                  f"{order}, events.rowid {order} LIMIT ?")
        texts = _fts_driven(compile_query(request.query or "*"))
        for _ in range(_WALK_SPANS):
            if span > _WALK_MAX_ROWS and span > max(_WALK_ROWS, 100 * need):
                return None  # (a long walk costs more than sorting: the matches are sparse)
            lo, hi, seen = self._run(f"SELECT min(r), max(r), count(*) FROM ({walked})",
                                     extra + window + [span])[0]
            if not seen:
                return []
            if texts is not None and isinstance(texts[1], All):
                # full text alone: the span's rowids checked against the full-text index's
                # matches in the span's rowid range, in the walk's order (no table lookup)
                params: list = []
                member = fts_membership(fts_match_all(texts[0], params), params, (lo, hi), "w.r")
                matched = (f"SELECT w.r FROM ({walked}) AS w WHERE {member} ORDER BY w.t {order}, "
                           f"w.r {order} LIMIT ?")
                params = extra + window + [span] + params + [need]
            else:
                where, params = self._where(request, documents=True, rowids=(lo, hi))
                matched = (f"SELECT events.rowid FROM events WHERE events.rowid IN (SELECT r "
                           f"FROM ({walked})) AND ({where}) ORDER BY events.ts {order}, "
                           f"events.rowid {order} LIMIT ?")
                params = extra + window + [span] + params + [need]
            found = self._run(f"SELECT rowid, ts, id, doc FROM events WHERE rowid IN ({matched}) "
                              f"ORDER BY ts {order}, rowid {order}", params)
            if len(found) == need or seen < span:  # enough, or every timed event checked
                return found
            span *= 8
        return None

    @staticmethod
    def _events(rows) -> list[dict]:
        events = []
        for _, _, eid, doc in rows:
            event = returned_doc(doc)
            event["_id"] = eid
            events.append(event)
        return events

    def search_page(self, request: SearchRequest, after: str | None = None,
                    with_total: bool = True) -> Page:
        """One page of ``request.limit`` events after a cursor, by keyset on (ts, rowid); the
        cursor is :func:`store.base.encode_cursor` of the last event's (ts, rowid)."""
        position = decode_cursor(after, lambda rowid: type(rowid) is int)
        where, params = self._where(request)
        desc = str(request.order).lower() != "asc"
        limit = max(0, int(request.limit or 0))
        total, relation = None, "eq"
        matches = None
        if with_total or limit:
            # counted up to TRACK_TOTAL_HITS (+1 to tell "more"), from a value index alone
            # when the query allows; it also chooses the plan of the page
            matches = self._count_upto(request, TRACK_TOTAL_HITS + 1)
        if with_total:
            assert matches is not None
            total, relation = ((TRACK_TOTAL_HITS, "gte") if matches > TRACK_TOTAL_HITS
                               else (matches, "eq"))
        if not limit:
            return Page(total, [], None, relation)
        walk = self._walk(request, matches or 0)
        rows = self._keyset_rows(where, params, desc, position,  # type: ignore[arg-type]
                                 limit + 1, walk)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor(rows[-1][1], rows[-1][0]) if more and rows else None
        return Page(total, self._events(rows), cursor, relation)

    def stream(self, request: SearchRequest, page_size: int = 1000) -> Iterator[dict]:
        """Every match in order, a page at a time, by the keyset of :meth:`search_page`."""
        where, params = self._where(request)
        desc = str(request.order).lower() != "asc"
        remaining = None if request.limit is None else max(0, int(request.limit))
        page_size = max(1, int(page_size))
        position: tuple[int | None, int] | None = None
        walk = self._walk(request, self._count_upto(request, TRACK_TOTAL_HITS + 1))
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            rows = self._keyset_rows(where, params, desc, position, size, walk)
            yield from self._events(rows)
            if remaining is not None:
                remaining -= len(rows)
            if len(rows) < size:
                break
            position = (rows[-1][1], rows[-1][0])

    def histogram(self, request: SearchRequest, interval: str) -> list[tuple[datetime, int]]:
        step = parse_interval(interval)
        q = compile_query(request.query or "*")
        dim = _counted_dim(q)
        if dim is not None and step % rollup.HOUR == 0:
            where, params = self._where(SearchRequest(query=request.query))
            counted = self._histogram_by_counts(dim, where, params, step, request.start,
                                                request.end)
            if counted is not None:
                return counted
        if _index_friendly(q):
            # the window goes into each bucket's own range: with the window's range on ts as
            # well, SQLite seeks on the window and scans all of it for every bucket
            where, params = self._where(SearchRequest(query=request.query))
            return self._histogram_by_range(where, params, step, request.start, request.end)
        where, params = self._where(request)
        # buckets floor the time (as Elasticsearch does, also before 1970)
        rows = self._run(f"SELECT events.ts - ((events.ts % ?) + ?) % ? AS bucket, count(*) "
                         f"FROM events WHERE {where} AND events.ts IS NOT NULL GROUP BY bucket "
                         f"ORDER BY bucket", [step, step, step] + params)
        return fill_buckets(rows, step)

    def _histogram_by_counts(self, dim: tuple[str, list], where: str, params: list,
                             step: int, start: datetime | None, end: datetime | None):
        """A histogram of everything or of one host, type or program, in buckets of whole
        hours, from the per-hour counts (rollup.counted_histogram), all in one snapshot of
        the store; None when the counts cannot serve it."""
        w_lo = epoch_ms(start) if start is not None else INT64_MIN
        w_hi = epoch_ms(end) if end is not None else INT64_MAX
        with self.db.reading() as conn:
            try:
                conn.execute("BEGIN")  # one read snapshot: the counts, the mark and the rows
                try:
                    bounds = self._data_bounds(where, params, step, w_lo, w_hi, conn)
                    if bounds is None:
                        return []
                    counts = rollup.counted_histogram(conn, dim[0], dim[1], where, params, step,
                                                      bounds[0], bounds[1], w_lo, w_hi)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise
                raise SinkError(f"embedded store {self.db.path}: {exc}") from None
        return None if counts is None else fill_buckets(sorted(counts.items()), step)

    def _data_bounds(self, where: str, params: list, step: int, w_lo: int, w_hi: int,
                     conn: sqlite3.Connection | None = None) -> tuple[int, int] | None:
        """The first and last bucket holding a match in the window (None: no match); a
        QueryError when there would be too many buckets."""
        window = "events.ts >= ? AND events.ts < ?"
        sql = (f"SELECT (SELECT min(events.ts) FROM events WHERE {where} AND {window}), "
               f"(SELECT max(events.ts) FROM events WHERE {where} AND {window})")
        args = params + [w_lo, w_hi] + params + [w_lo, w_hi]
        lo, hi = (conn.execute(sql, args).fetchone() if conn is not None
                  else self._run(sql, args)[0])
        if lo is None:
            return None
        first, last = lo - lo % step, hi - hi % step  # Python's % floors
        if (last - first) // step > MAX_BUCKETS:
            fill_buckets([(first, 1), (last, 1)], step)  # raises the QueryError
        return first, last

    def _histogram_by_range(self, where: str, params: list, step: int,
                            start: datetime | None = None, end: datetime | None = None):
        """For a query an index answers in time order (everything, a promoted field's value,
        a time range): one index range count per bucket. GROUP BY on a computed bucket would
        sort every matching row instead (7x slower on a million events). The window
        [start, end) bounds the buckets' ranges (``where`` holds no time window)."""
        w_lo = epoch_ms(start) if start is not None else INT64_MIN
        w_hi = epoch_ms(end) if end is not None else INT64_MAX
        bounds = self._data_bounds(where, params, step, w_lo, w_hi)
        if bounds is None:
            return []
        first, last = bounds
        rows = self._run(f"WITH RECURSIVE b(x) AS (SELECT ? UNION ALL SELECT x + ? FROM b "
                         f"WHERE x < ?) SELECT b.x, (SELECT count(*) FROM events WHERE {where} "
                         f"AND events.ts >= max(b.x, ?) AND events.ts < min(b.x + ?, ?)) FROM b",
                         [first, step, last] + params + [w_lo, step, w_hi])
        return fill_buckets(rows, step)

    def top(self, request: SearchRequest, field: str, size: int = 10) -> list[tuple[str, int]]:
        doc_field = TEXT_FIELD if field == TEXT_KEYWORD else field
        where, params = self._where(request, also=(doc_field,))
        size = max(1, int(size))
        if field in SQL_COLUMNS:
            col = SQL_COLUMNS[field]
            sql = (f"SELECT events.{col} AS v, count(*) AS c FROM events WHERE {where} "
                   f"AND events.{col} IS NOT NULL GROUP BY v ORDER BY c DESC, v ASC LIMIT ?")
            rows = self._run(sql, params + [size])
        elif json_indexable(doc_field) and json_index_name(doc_field) in self._index_names():
            # everything, or one term on host, type or program: the value counts maintenance
            # keeps (value_counts), when they serve
            dim = (_counted_dim(compile_query(request.query or "*"))
                   if request.start is None and request.end is None else None)
            counted = self._top_by_counts(doc_field, size, dim) if dim is not None else None
            if counted is not None:
                return [(bucket_key(v), c) for v, c in counted]
            force = where == "1" or self._count_upto(
                request, _TOP_BY_FIELD_INDEX + 1) > _TOP_BY_FIELD_INDEX
            # (value by value only for a field of few values: with many, each value's count
            # repeats the query's own work, hundreds of times before it gives up)
            rows = self._top_by_heavy(request, doc_field, size) if force and where != "1" \
                else None
            walk = force and rows is None and not self._many_values(doc_field)
            if walk:
                rows = self._top_by_values(doc_field, where, params, size)
            if rows is None and force:
                rows = self._top_by_groups(doc_field, where, params, size)
            if rows is None:
                rows = self._run(*_indexed_top(doc_field, where, params, size, force))
        else:
            path = json_path(doc_field)
            sql = (f"SELECT j.value AS v, count(DISTINCT events.rowid) AS c FROM events, "
                   f"json_each(events.doc, ?) AS j WHERE {where} AND j.type NOT IN "
                   f"('null', 'object', 'array') GROUP BY v ORDER BY c DESC, v ASC LIMIT ?")
            rows = self._run(sql, [path] + params + [size])
        return [(bucket_key(v), c) for v, c in rows]

    def _top_by_heavy(self, request: SearchRequest, field: str, size: int):
        """Top values under a query that matches many events, of a field of many values
        nearly all of one event each (value_counts.top_under_query), in one snapshot; None
        when the counts cannot serve it (or the query has full text: its matches would be
        collected once per value)."""
        where, params = self._where(request, documents=True)
        if FTS_TABLE in where:
            return None
        return self._in_snapshot(value_counts.top_under_query, field, size, where, params)

    def _in_snapshot(self, read, *args):
        """``read(conn, *args)`` in one read transaction: the counts, their mark and the rows
        above it seen as of one moment."""
        with self.db.reading() as conn:
            try:
                conn.execute("BEGIN")
                try:
                    return read(conn, *args)
                finally:
                    conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise
                raise SinkError(f"embedded store {self.db.path}: {exc}") from None

    def _many_values(self, field: str) -> bool:
        """More distinct values than _TOP_DISTINCT_WALK by the value counts (False when the
        field's values are not counted: the walk finds out)."""
        with self.db.reading() as conn:
            try:
                return bool(value_counts.more_values_than(conn, field, _TOP_DISTINCT_WALK))
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise
                raise SinkError(f"embedded store {self.db.path}: {exc}") from None

    def _top_by_counts(self, field: str, size: int,
                       dim: tuple[str, list] = ("", [""])) -> list[tuple] | None:
        """Top values of an indexed field over every event (``dim`` ('', [''])) or under one
        term on host, type or program (``dim``: _counted_dim's column and values) from its
        value counts and the rows not counted yet (value_counts.counted_top), in one snapshot
        of the store; None when the counts cannot serve it."""
        if not dim[0]:
            return self._in_snapshot(value_counts.counted_top, field, size)
        return self._in_snapshot(value_counts.counted_top, field, size, dim[0], dim[1])

    def _top_by_values(self, field: str, where: str, params: list, size: int):
        """Top values of an indexed field by walking its distinct scalar values in index order
        (one value read per distinct value: SQLite 3.40 recomputes an indexed expression for
        every row it returns, so GROUP BY would read every document) and counting each with an
        index range; lists and objects as _indexed_top does. None when the field has more than
        _TOP_DISTINCT_WALK distinct values (then GROUP BY is the cheaper way)."""
        x, path, index = json_value_sql(field, "events."), json_literal_path(field), \
            json_index_name(field)
        first = f"SELECT {x} FROM events INDEXED BY {index} WHERE {x} < x'' ORDER BY {x} LIMIT 1"
        after = (f"SELECT {x} FROM events INDEXED BY {index} WHERE {x} > ? AND {x} < x'' "
                 f"ORDER BY {x} LIMIT 1")
        count = f"SELECT count(*) FROM events INDEXED BY {index} WHERE {x} = ? AND {where}"
        counts: dict = {}
        row = self._run(first, [])
        while row:
            value = row[0][0]
            if len(counts) >= _TOP_DISTINCT_WALK:
                return None
            n = self._run(count, [value] + params)[0][0]
            if n:
                counts[value] = n
            row = self._run(after, [value])
        for value, n in self._run(
                f"SELECT j.value, count(DISTINCT events.rowid) FROM events INDEXED BY {index}, "
                f"json_each(events.doc, {path}) AS j WHERE {where} AND {x} >= x'' AND j.type "
                f"NOT IN ('null', 'object', 'array') GROUP BY j.value", params):
            counts[value] = counts.get(value, 0) + n
        # SQLite's order: numbers before text, text by its bytes (= code points)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], isinstance(kv[0], str), kv[0]))
        return ranked[:size]

    def _index_names(self) -> set[str]:
        return {r[0] for r in self._run("SELECT name FROM sqlite_master WHERE type = 'index' "
                                        "AND name LIKE ?", [JSON_INDEX_PREFIX + "%"])}

    def _top_by_groups(self, field: str, where: str, params: list, size: int):
        """Top values of an indexed field whose values are all scalars, in one pass along its
        index: GROUP BY the indexed value, naming each group by one of its rowids (SQLite 3.40
        would read a document per group to return the value itself) and keeping the ``size``
        largest; the ties at the cut are resolved as Elasticsearch does (the smaller value
        first) by a second pass that stops at the first groups of that count in value order.
        Then the values of those few rowids. None when the field holds lists or objects."""
        x, index = json_value_sql(field, "events."), json_index_name(field)
        if self._run(f"SELECT 1 FROM events INDEXED BY {index} WHERE {x} >= x'' LIMIT 1", []):
            return None
        groups = f"FROM events INDEXED BY {index} WHERE {x} < x'' AND ({where}) GROUP BY {x}"
        # (a bare column in an aggregate query is taken from one row of the group: any row
        # names the group's value, and costs less than min())
        best = self._run(f"SELECT events.rowid, count(*) AS c {groups} ORDER BY c DESC "
                         f"LIMIT ?", params + [size])
        if len(best) == size:
            cut = best[-1][1]
            above = [(r, c) for r, c in best if c > cut]
            best = above + self._run(f"SELECT events.rowid, count(*) {groups} "
                                     f"HAVING count(*) = ? LIMIT ?",
                                     params + [cut, size - len(above)])
        if not best:
            return []
        values = dict(self._run(f"SELECT rowid, {json_value_sql(field)} FROM events WHERE "
                                f"rowid IN ({', '.join('?' * len(best))})",
                                [r for r, _ in best]))
        # SQLite's order: numbers before text, text by its bytes (= code points)
        return sorted(((values[r], c) for r, c in best),
                      key=lambda vc: (-vc[1], isinstance(vc[0], str), vc[0]))

    def count(self, request: SearchRequest) -> int:
        return self._count_upto(request, None)

    def size(self) -> dict:
        """What the store holds: ``events`` and ``bytes`` on disk (the database, its WAL and
        shared-memory files), ``parts`` each file's size (the health page)."""
        import os

        parts = []
        for suffix in ("", "-wal", "-shm"):
            try:
                parts.append((os.path.basename(self.db.path) + suffix,
                              os.stat(self.db.path + suffix).st_size))
            except OSError:
                continue
        events = self._run("SELECT count(*) FROM events", [])[0][0]
        return {"events": int(events), "bytes": sum(b for _, b in parts), "parts": parts}

    # single events, for the web page (search/web/data.py)
    def get_event(self, event_id: str) -> dict | None:
        """The stored document with this id (``_id`` added), or None."""
        rows = self._run("SELECT id, doc FROM events WHERE id = ?", [event_id])
        if not rows:
            return None
        event = returned_doc(rows[0][1])
        event["_id"] = rows[0][0]
        return event


def _indexed_top(field: str, where: str, params: list, size: int,
                 force: bool) -> tuple[str, list]:
    """Top values of a field with a value index: scalar values counted over the index (one
    per event), lists and objects element by element (an event once per distinct value), as
    the json_each form counts them; the two sets of events are disjoint, so counts add up.
    ``force``: walk the field's index even when the query has an index of its own (when the
    query matches many events, reading each one's document costs more)."""
    x, path, index = json_value_sql(field, "events."), json_literal_path(field), \
        json_index_name(field)
    hint = f" INDEXED BY {index}" if force else ""
    sql = (f"SELECT v, sum(c) AS n FROM (SELECT {x} AS v, count(*) AS c FROM events{hint} "
           f"WHERE {where} AND {x} < x'' GROUP BY v UNION ALL SELECT j.value AS v, "
           f"count(DISTINCT events.rowid) AS c FROM events INDEXED BY {index}, "
           f"json_each(events.doc, {path}) AS j WHERE {where} AND {x} >= x'' AND j.type NOT IN "
           f"('null', 'object', 'array') GROUP BY j.value) GROUP BY v "
           f"ORDER BY n DESC, v ASC LIMIT ?")
    return sql, params + params + [size]


# a query matching more events than this has its top values counted along the field's index
_TOP_BY_FIELD_INDEX = 20_000
# distinct values walked one by one before top falls back to GROUP BY
_TOP_DISTINCT_WALK = 500


_TIME_INDEXED = frozenset(("host", "program", "qid"))
# events checked along the time index for a page of a query matching many (_keyset_rows): at
# least this many in the first span, at most _WALK_SPANS spans (each 8x the last)
_WALK_ROWS = 2000
_WALK_SPANS = 3
_WALK_MAX_ROWS = 200_000


def _fts_driven(q) -> tuple[list, object] | None:
    """(the full-text conditions, the rest of the conjunction) when the query is one or a
    conjunction holding some: their matches can be walked in the full-text index's order,
    each event looked up by rowid, so that counting them up to a cap stops at the cap."""
    if isinstance(q, (Text, TextWildcard)):
        return [q], All()
    if isinstance(q, And):
        texts = [i for i in q.items if isinstance(i, (Text, TextWildcard))]
        rest = tuple(i for i in q.items if i not in texts)
        if texts:
            return texts, (All() if not rest else rest[0] if len(rest) == 1 else And(rest))
    return None


def _counted_dim(q) -> tuple[str, list] | None:
    """The per-hour counts (rollup) that hold a query's histogram: everything ('', ['']) or
    one term on a counted column (the column, its value and the value as a number, as the
    term's SQL compares); None for any other query."""
    if isinstance(q, All):
        return "", [""]
    if isinstance(q, Term) and q.field in rollup.DIMS:
        n = numeric(q.value)
        return q.field, [q.value] if n is None else [q.value, n]
    return None


def _index_friendly(q) -> bool:
    """True when every part of a query is served by the ts index or a (column, ts) index: then
    counting bucket by bucket over index ranges is cheap and the planner cannot go wrong."""
    if isinstance(q, (All, TimeRange)):
        return True
    if isinstance(q, Term):
        return q.field in _TIME_INDEXED
    if isinstance(q, And):
        return all(_index_friendly(i) for i in q.items)
    return False

